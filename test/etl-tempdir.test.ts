// The titles ETL writes no temp files (README "Titles ETL": the file streams into a TEMP table, the rest is SQL): a
// load killed with SIGKILL mid-COPY leaves nothing in $TMPDIR and nothing in the database, and the next run loads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { useDatabase } from './helpers/db.ts';

const t = useDatabase(test);
const root = path.resolve(import.meta.dirname, '..');
/** What is in dir, but tsx's own cache (tsx-<uid>), which any tsx process makes there. */
const leftIn = (dir: string) => fs.readdirSync(dir).filter((n) => !/^tsx-\d+$/.test(n));

async function waitFor(what: string, check: () => Promise<boolean>) {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a SIGKILLed load leaves no temp file and no row; the next run loads', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-etl-tmp-'));
  const env = { ...process.env, DATABASE_URL: t.url, TMPDIR: tmp };
  try {
    // A load from stdin whose input never ends: killed while its COPY is under way.
    const child = spawn(process.execPath, ['--import', 'tsx', 'etl/load-titles.ts', '--quiet', '-'],
      { cwd: root, env, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.on('error', () => {}); // EPIPE once it is killed
    child.stdin!.write(fs.readFileSync(path.join(root, 'etl/data/netflix_titles.csv.gz')));
    await waitFor(`the load's COPY (${err})`, async () => (await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'marquee-etl' AND query LIKE 'COPY titles_staging%'`))!.n > 0);
    child.kill('SIGKILL');
    await exited;
    assert.equal(leftIn(tmp), [], 'nothing left in TMPDIR');
    const next = spawnSync(process.execPath, ['--import', 'tsx', 'etl/load-titles.ts', '--quiet', 'test/fixtures/etl/base.csv'],
      { cwd: root, env, encoding: 'utf8' });
    assert.is(next.status, 0, next.stderr);
    assert.is((await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM titles`))!.n, 12, 'only the second run\'s titles');
    assert.equal(leftIn(tmp), []);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
