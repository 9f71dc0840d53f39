// The real Kaggle titles file, from the copy the repository ships (etl/data/netflix_titles.csv.gz, the 2021 file byte
// for byte, checked by SHA-256 in etl-real.test.ts): tests and benchmarks need nothing beside the repository.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { BUNDLED_TITLES } from '../../etl/titles/demo-step.ts';

export { BUNDLED_TITLES };

let text: string | undefined;
/** The real CSV's text (UTF-8). */
export function realTitlesText(): string {
  return (text ??= zlib.gunzipSync(fs.readFileSync(BUNDLED_TITLES)).toString('utf8'));
}

let csvPath: string | undefined;
/** A plain .csv copy of the real file (decompressed once per process into a temp dir, removed at exit). */
export function realTitlesCsv(): string {
  if (csvPath) return csvPath;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-titles-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  csvPath = path.join(dir, 'netflix_titles.csv');
  fs.writeFileSync(csvPath, zlib.gunzipSync(fs.readFileSync(BUNDLED_TITLES)));
  return csvPath;
}
