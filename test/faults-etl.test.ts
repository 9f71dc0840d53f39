// Full disk during the titles ETL (README "Titles ETL", faults): `npm run etl` under a file-size limit (`ulimit -f`
// in a shell wrapper: Node ignores SIGXFSZ, so a write past the limit fails with EFBIG, as it fails with ENOSPC on a
// full disk). The ETL writes files in two places: its temp spool of link rows (marquee-etl-links-* under TMPDIR) and
// the --rejects CSV. Either one failing: a message naming the problem and the file, exit status 3, and the catalog
// exactly as before (checksums of every catalog table).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useDatabase } from './helpers/db.ts';
import { loadTitles } from '../etl/titles/load.ts';

const t = useDatabase(test);
const root = path.resolve(import.meta.dirname, '..');
const CATALOG = ['titles', 'genres', 'countries', 'people', 'title_genres', 'title_countries', 'title_cast', 'title_directors'];

async function checksum(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of CATALOG) {
    const r = await t.db.one<{ n: number; h: string | null }>(`SELECT count(*)::int AS n, md5(string_agg(x::text, ',' ORDER BY x::text)) AS h FROM ${table} x`);
    out[table] = `${r!.n}:${r!.h}`;
  }
  return out;
}

/** `npm run etl -- args` with the file-size limit `blocks` (ulimit -f: 512-byte blocks in sh, 1024 in bash; sh here). */
function etlUnderLimit(blocks: number, tmp: string, args: string[]) {
  const cmd = `ulimit -f ${blocks} && exec "$0" --import tsx etl/load-titles.ts --quiet "$@"`;
  return spawnSync('/bin/sh', ['-c', cmd, process.execPath, ...args], {
    cwd: root, encoding: 'utf8', env: { ...process.env, DATABASE_URL: t.url, TMPDIR: tmp },
  });
}

test.before(async () => {
  await loadTitles(t.db, path.join(root, 'test/fixtures/etl/base.csv'));
});

test('the temp spool hits the limit during the load: a clear message, exit 3, the catalog unchanged, no spool left', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-etl-full-'));
  try {
    const before = await checksum();
    assert.ok(Number(before.titles.split(':')[0]) > 0, 'a catalog to keep');
    // the real file spools over 1 MB of link rows: 32 KB is far too little
    const r = etlUnderLimit(64, tmp, ['--replace', 'etl/data/netflix_titles.csv.gz']);
    console.log(`[faults] ETL with a 32 KB file-size limit: exit ${r.status}; stderr: ${r.stderr.trim()}`);
    assert.is(r.status, 3, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /file too large|no space left/i);
    assert.match(r.stderr, /marquee-etl-links-/, 'names the file it could not write');
    assert.match(r.stderr, /nothing was written/);
    assert.equal(await checksum(), before, 'the catalog is unchanged');
    assert.equal(fs.readdirSync(tmp).filter((n) => n.startsWith('marquee-etl-links-')), [], 'the spool is removed');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the --rejects file hits the limit: a clear message naming it, exit 3, the catalog unchanged', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-etl-full-'));
  try {
    // defects.csv loads with rejected rows: a dry run without the limit writes them (its spool is small)
    const rejects = path.join(tmp, 'rejects.csv');
    const dry = etlUnderLimit(1_000_000, tmp, ['--dry-run', '--rejects', rejects, 'test/fixtures/etl/defects.csv']);
    assert.is(dry.status, 0, dry.stderr);
    assert.ok(fs.statSync(rejects).size > 512, `the rejects CSV is bigger than the limit: ${fs.statSync(rejects).size} bytes`);
    fs.rmSync(rejects);
    const before = await checksum();
    const r = etlUnderLimit(1, tmp, ['--rejects', rejects, 'test/fixtures/etl/defects.csv']);
    console.log(`[faults] ETL --rejects with a 512-byte file-size limit: exit ${r.status}; stderr: ${r.stderr.trim()}`);
    assert.is(r.status, 3, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /file too large|no space left/i);
    assert.match(r.stderr, /rejects/);
    assert.match(r.stderr, /nothing was written/);
    assert.equal(await checksum(), before, 'the catalog is unchanged');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
