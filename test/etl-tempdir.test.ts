// The titles ETL's temp folder (marquee-etl-links-*, the spooled link rows: 7.3 MB for the real file) is removed by
// the run that made it; one left by a run killed with SIGKILL is removed by the next run, a live run's never.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { useDatabase } from './helpers/db.ts';

const t = useDatabase(test);
const root = path.resolve(import.meta.dirname, '..');
const spools = (dir: string) => fs.readdirSync(dir).filter((n) => n.startsWith('marquee-etl-links-'));

/** Resolves with the first marquee-etl-links-* entry in dir (watched: no polling interval). */
function firstSpool(dir: string): Promise<string> {
  return new Promise((resolve) => {
    const check = () => {
      const found = spools(dir)[0];
      if (found) { watcher.close(); resolve(found); }
    };
    const watcher = fs.watch(dir, check);
    check();
  });
}

test('a SIGKILLed load leaves its temp folder; the next run removes it and keeps a live run\'s', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-etl-tmp-'));
  const env = { ...process.env, DATABASE_URL: t.url, TMPDIR: tmp };
  try {
    // A load from stdin (unknown size: the list worker and its spool) whose input never ends: killed mid-load.
    const child = spawn(process.execPath, ['--import', 'tsx', 'etl/load-titles.ts', '--quiet', '-'],
      { cwd: root, env, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.on('error', () => {}); // EPIPE once it is killed
    child.stdin!.write(fs.readFileSync(path.join(root, 'etl/data/netflix_titles.csv.gz')));
    const stale = await firstSpool(tmp);
    child.kill('SIGKILL');
    await exited;
    assert.ok(fs.existsSync(path.join(tmp, stale)), `the killed run left ${stale} (${err})`);

    // A folder of a live process (this one, and pid 1 with no start time recorded) is left alone …
    const live = [`marquee-etl-links-${process.pid}-0-aaaaaa`, 'marquee-etl-links-1-0-bbbbbb'];
    for (const l of live) fs.mkdirSync(path.join(tmp, l));
    // … but one whose pid now names a process started at another time (pid reuse, e.g. after a container restart) goes.
    const stat1 = fs.readFileSync('/proc/1/stat', 'utf8');
    const reused = `marquee-etl-links-1-${Number(stat1.slice(stat1.lastIndexOf(')') + 2).split(' ')[19]) + 1}-cccccc`;
    fs.mkdirSync(path.join(tmp, reused));
    const next = spawnSync(process.execPath, ['--import', 'tsx', 'etl/load-titles.ts', '--quiet', 'test/fixtures/etl/base.csv'],
      { cwd: root, env, encoding: 'utf8' });
    assert.is(next.status, 0, next.stderr);
    assert.equal(spools(tmp).sort(), live.sort(), 'only the live runs\' folders remain');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
