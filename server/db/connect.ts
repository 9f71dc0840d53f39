// Where the database comes from: DATABASE_URL, or an embedded PostgreSQL under MARQUEE_DATA_DIR (default ./var).
import path from 'node:path';
import { startEmbedded } from './embedded.ts';
import { withConnection, withDatabase, ident } from './index.ts';
import type { Config } from '../config.ts';

export interface DatabaseTarget {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

export const APP_DATABASE = 'marquee';

/** shareRunning: a command-line tool may use the embedded PostgreSQL of a running server on the same data directory. */
export async function openDatabase(config: Pick<Config, 'databaseUrl' | 'dataDir' | 'pgHome'>, log = (l: string) => console.log(l),
  opts: { shareRunning?: boolean } = {}): Promise<DatabaseTarget> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, stop: async () => {} };
  }
  const dataDir = path.resolve(config.dataDir);
  const pg = await startEmbedded({ dataDir, log: (l) => log(`[postgres] ${l}`), shareRunning: opts.shareRunning, pgHome: config.pgHome });
  try {
    await withConnection(pg.url, async (c) => {
      const exists = await c.one('SELECT 1 FROM pg_database WHERE datname = $1', [APP_DATABASE]);
      if (!exists) await c.query(`CREATE DATABASE ${ident(APP_DATABASE)}`);
    });
  } catch (e) {
    await pg.stop();
    throw e;
  }
  return { url: withDatabase(pg.url, APP_DATABASE), embedded: true, stop: () => pg.stop() };
}
