// First-start demo data: the real 2021 catalog, shipped gzipped in the repository so `npm start` needs no network.
// Loaded through the same loadTitles() as `npm run etl`.
import { fileURLToPath } from 'node:url';
import type { Db } from '../../server/db/index.ts';
import { loadTitles } from './load.ts';

export const BUNDLED_TITLES = fileURLToPath(new URL('../data/netflix_titles.csv.gz', import.meta.url));

export const titlesDemoStep = {
  name: 'titles',
  async present(db: Db): Promise<boolean> {
    return !!(await db.one('SELECT 1 FROM titles LIMIT 1'));
  },
  async load(db: Db, log: (line: string) => void): Promise<void> {
    const s = await loadTitles(db, BUNDLED_TITLES);
    log(`titles: ${s.inserted} inserted, ${s.updated} updated, ${s.unchanged} unchanged from ${BUNDLED_TITLES} ` +
      `(${Object.values(s.defects).reduce((a, b) => a + (b ?? 0), 0)} defects fixed, ${s.rejects.length} rows rejected)`);
  },
};
