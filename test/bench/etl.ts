// npm run bench -- etl: the titles ETL against baselines measured in the same run.
//  1. the real 8,807-title file into an empty catalog (in-process, so no process start), then again (all unchanged)
//  2. a 10k-row sample: row-by-row INSERT (what the original project did, normalized) vs loadTitles — the speedup
//  3. a 100x file (fresh show_ids, ~340 MB) in /tmp: `psql \copy` of the same bytes into an equivalent TEMP table vs
//     loadTitles' staging COPY (read + decode + validate + COPY) and whole load, best of two each; RSS growth while
//     loading (the first load); and the floor: what writing the loaded rows alone costs (binary COPY back into the
//     emptied tables, then their keys)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { benchDatabase, time, fmt, record } from './lib.ts';
import { pipeline } from 'node:stream/promises';
import { loadTitles, LINK_TABLES, LINK_KEYS, type LoadSummary } from '../../etl/titles/load.ts';
import { dropForBulkLoad, verifyForeignKeys } from '../../server/db/bulk.ts';
import type { Db } from '../../server/db/index.ts';
import { realTitlesCsv } from '../helpers/dataset.ts';
import { csvRows } from '../helpers/csv.ts';

const REAL = realTitlesCsv();
const SCALE = Number(process.env.ETL_BENCH_SCALE ?? 100);
const PSQL = process.env.PSQL ?? '/usr/bin/psql';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-etl-bench-'));
const bigFile = path.join(tmp, `netflix_titles_x${SCALE}.csv`);
const sampleFile = path.join(tmp, 'sample_10k.csv');

/** The real file's records (RFC 4180: a record ends at a newline outside quotes). */
function records(text: string): string[] {
  const out: string[] = [];
  let start = 0, quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) quoted = !quoted;
    else if (c === 10 && !quoted) { out.push(text.slice(start, i)); start = i + 1; }
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

const [header, ...rows] = records(fs.readFileSync(REAL, 'utf8'));
// SCALE copies with fresh show_ids ("x7-s123"); the first 10,000 records also make the sample
{
  const fd = fs.openSync(bigFile, 'w');
  const sample: string[] = [header];
  fs.writeSync(fd, header + '\n');
  for (let k = 0; k < SCALE; k++) {
    const part = rows.map((r) => `x${k}-${r}`);
    for (const r of part) if (sample.length <= 10_000) sample.push(r);
    fs.writeSync(fd, part.join('\n') + '\n');
  }
  fs.closeSync(fd);
  fs.writeFileSync(sampleFile, sample.join('\n') + '\n');
}
const bigBytes = fs.statSync(bigFile).size;

const bench = await benchDatabase('etl');
const db = bench.db;
const clean = () => db.query('TRUNCATE titles, genres, countries, people, title_genres, title_countries, title_cast, title_directors RESTART IDENTITY CASCADE');
const lines: string[] = [];
const say = (l: string) => { console.log(l); lines.push(l); };

try {
  // ── 1. the real file ─────────────────────────────────────────────────────────────────────────────────────────
  const cold = await time(() => loadTitles(db, REAL));
  const again = await time(() => loadTitles(db, REAL));
  await clean();
  const warm = await time(() => loadTitles(db, REAL));
  say(`real file (8,807 titles) into an empty catalog: ${fmt(cold.ms, 0)} ms first in this process, ${fmt(warm.ms, 0)} ms warm ` +
    `(COPY ${fmt(warm.result.timings.copyMs, 0)} ms + normalize ${fmt(warm.result.timings.normalizeMs, 0)} ms); ` +
    `target < 1000 ms`);
  say(`real file again over itself (${again.result.unchanged} unchanged): ${fmt(again.ms, 0)} ms`);
  record('real file (8,807 titles) into an empty catalog, warm', warm.ms, 'ms', { max: 1000 });

  // ── 2. row-by-row INSERT vs the loader, 10k rows ─────────────────────────────────────────────────────────────
  await clean();
  const sampleRows = csvRows(fs.readFileSync(sampleFile, 'utf8')).slice(1);
  const rowByRow = await time(() => insertRowByRow(db, sampleRows));
  await clean();
  const loader10k = await time(() => loadTitles(db, sampleFile));
  const check = await db.one(`SELECT count(*) AS n FROM titles`);
  say(`10k sample: row-by-row INSERT ${fmt(rowByRow.ms, 0)} ms (${fmt(rowByRow.result, 0)} statements, one transaction); ` +
    `loadTitles ${fmt(loader10k.ms, 0)} ms (${check!.n} titles) => speedup ${fmt(rowByRow.ms / loader10k.ms, 1)}x`);
  record('10k-row sample, loadTitles', loader10k.ms, 'ms', { baseline: 'row-by-row INSERT', baselineValue: rowByRow.ms });

  // ── 3. the 100x file: psql \copy baseline vs the loader ──────────────────────────────────────────────────────
  await clean();
  const rawCopy = () => {
    const t0 = performance.now();
    const r = spawnSync(PSQL, [bench.url, '-X', '-q', '-v', 'ON_ERROR_STOP=1',
      '-c', `CREATE TEMP TABLE raw_titles (show_id text, type text, title text, director text, "cast" text, country text,
        date_added text, release_year text, rating text, duration text, listed_in text, description text)`,
      '-c', `\\copy raw_titles FROM '${bigFile}' WITH (FORMAT csv, HEADER true)`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`psql failed: ${r.stderr || r.error}`);
    return performance.now() - t0;
  };
  // each side twice, alternating, and the best of each: this 2-core machine's timings wander by 10-20 % run to run
  const psql1 = rawCopy();
  const rssBase = process.memoryUsage().rss;
  let rssPeak = rssBase;
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss); }, 25);
  let big: LoadSummary;
  try {
    big = (await time(() => loadTitles(db, bigFile))).result;
  } finally {
    clearInterval(sampler);
  }
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  const psql2 = rawCopy();
  await clean();
  const big2 = (await time(() => loadTitles(db, bigFile))).result;
  const psqlMs = Math.min(psql1, psql2);
  const copyMs = Math.min(big.timings.copyMs, big2.timings.copyMs);
  const best = big.timings.totalMs <= big2.timings.totalMs ? big : big2;
  const mbps = (ms: number) => bigBytes / 1e6 / (ms / 1000);
  say(`${SCALE}x file: ${fmt(bigBytes / 1e6, 0)} MB, ${fmt(big.rows, 0)} rows, ${fmt(big.inserted, 0)} titles inserted`);
  say(`  psql \\copy into a TEMP table of 12 text columns: ${fmt(psql1, 0)} ms and ${fmt(psql2, 0)} ms (best ${fmt(mbps(psqlMs), 1)} MB/s)`);
  say(`  loadTitles staging COPY (read, decode, validate, fix, COPY): ${fmt(big.timings.copyMs, 0)} ms and ${fmt(big2.timings.copyMs, 0)} ms ` +
    `(best ${fmt(mbps(copyMs), 1)} MB/s) => ${fmt(psqlMs / copyMs, 2)}x psql throughput (target >= 0.8x)`);
  record(`${SCALE}x file (${fmt(bigBytes / 1e6, 0)} MB), staging COPY`, copyMs, 'ms', { baseline: 'psql \\copy, same bytes', baselineValue: psqlMs,
    target: 'throughput ≥ 0.8× psql', met: psqlMs / copyMs >= 0.8 });
  say(`  whole load incl. normalization: ${fmt(big.timings.totalMs, 0)} ms and ${fmt(big2.timings.totalMs, 0)} ms (best: normalize ` +
    `${fmt(best.timings.normalizeMs, 0)} ms) => ${fmt(best.timings.totalMs / psqlMs, 2)}x the raw psql time`);
  say(`  RSS growth while loading: ${fmt((rssPeak - rssBase) / 1e6, 1)} MB (from ${fmt(rssBase / 1e6, 0)} MB to a peak of ${fmt(rssPeak / 1e6, 0)} MB; target < 100 MB)`);
  record(`${SCALE}x file, RSS growth while loading`, (rssPeak - rssBase) / 1e6, 'MB', { target: '< 100 MB', met: rssPeak - rssBase < 100e6 });
  const floor = await writeFloor();
  say(`  floor of any loader into this schema: the rows it wrote, COPYed back in binary with no parsing, no trigger and no ` +
    `index but the primary keys others reference: ${fmt(floor.rowsMs, 0)} ms (${fmt(floor.rowsMs / psqlMs, 2)}x raw); their keys and indexes built and foreign keys ` +
    `verified: ${fmt(floor.keysMs, 0)} ms more; so reading the file once (1x) and writing its catalog takes at least ` +
    `${fmt(1 + floor.rowsMs / psqlMs, 2)}x raw without keys, ${fmt(1 + (floor.rowsMs + floor.keysMs) / psqlMs, 2)}x with them`);
  const floorMs = psqlMs + floor.rowsMs + floor.keysMs;
  say(`  whole load against that floor (reading once + writing with keys, ${fmt(floorMs, 0)} ms): ` +
    `${fmt(best.timings.totalMs / floorMs, 2)}x (target <= 1.15x)`);
  record(`${SCALE}x file, whole load`, best.timings.totalMs, 'ms', { baseline: 'floor: psql read + binary COPY write with keys', baselineValue: floorMs,
    target: 'ratio ≤ 1.15×', met: best.timings.totalMs / floorMs <= 1.15 });
} finally {
  await bench.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}

/**
 * What writing the loaded catalog costs by itself: every row the load wrote is COPYed out in binary, then (in a
 * transaction rolled back at the end) the tables are emptied and the rows COPYed back in the cheapest way PostgreSQL
 * has — binary, indexes dropped (but the primary keys foreign keys rely on), foreign-key triggers off — and the keys,
 * indexes and foreign keys restored as the loader's own bulk path does. No loader can write this schema's rows faster, whatever it does with the file.
 */
async function writeFloor(): Promise<{ rowsMs: number; keysMs: number }> {
  const tables = ['titles', 'genres', 'countries', 'people', ...LINK_TABLES];
  return db.withClient(async (q) => {
    for (const t of tables) {
      await pipeline(q.copyOut(`COPY ${t} TO STDOUT (FORMAT binary)`), fs.createWriteStream(path.join(tmp, `${t}.bin`)));
    }
    await q.query('BEGIN');
    try {
      await q.query(`TRUNCATE ${tables.join(', ')} CASCADE`); // watch_events refers to titles (empty here)
      const rebuild = await dropForBulkLoad(q, tables, { foreignKeys: false });
      const t0 = performance.now();
      await q.query(`SET LOCAL session_replication_role = replica`);
      for (const t of tables) {
        await q.copyIn(`COPY ${t} FROM STDIN (FORMAT binary)`, (stream) => pipeline(fs.createReadStream(path.join(tmp, `${t}.bin`)), stream));
      }
      await q.query(`SET LOCAL session_replication_role = origin`);
      const t1 = performance.now();
      await rebuild.rebuild();
      const ranges: Record<string, [number, number]> = {};
      for (const t of ['titles', 'genres', 'countries', 'people']) {
        const r = (await q.one<{ lo: number; hi: number }>(`SELECT min(id)::float8 AS lo, max(id)::float8 AS hi FROM ${t}`))!;
        ranges[t] = [r.lo, r.hi];
      }
      await verifyForeignKeys(q, LINK_KEYS, ranges);
      return { rowsMs: t1 - t0, keysMs: performance.now() - t1 };
    } finally {
      await q.query('ROLLBACK').catch(() => {}); // a failed ROLLBACK must not hide the error (the client is discarded)
    }
  });
}

/** The original project's way, normalized: per row an INSERT per title, per genre/country/person a lookup-or-insert and a link. */
async function insertRowByRow(db: Db, rows: string[][]): Promise<number> {
  let statements = 0;
  await db.tx(async (q) => {
    const lookup = async (table: 'genres' | 'countries' | 'people', name: string): Promise<number> => {
      statements++;
      const found = await q.one<{ id: number }>(`SELECT id FROM ${table} WHERE name = $1`, [name]);
      if (found) return found.id;
      statements++;
      return (await q.one<{ id: number }>(`INSERT INTO ${table} (name) VALUES ($1) RETURNING id`, [name]))!.id;
    };
    const split = (s: string) => [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))];
    for (const r of rows) {
      const [showId, type, title, director, cast, country, dateAdded, year, rating0, duration0, listedIn, description] = r;
      let rating = rating0.trim(), duration = duration0.trim();
      if (/min$/.test(rating) && !duration) { duration = rating; rating = ''; }
      const n = Number.parseInt(duration, 10) || null;
      statements++;
      const id = (await q.one<{ id: number }>(`INSERT INTO titles (show_id, type, title, release_year, rating, duration_minutes, seasons, date_added, description)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, [showId, type, title.trim(), year || null, rating || null,
        type === 'Movie' ? n : null, type === 'TV Show' ? n : null, dateAdded.trim() ? new Date(dateAdded.trim() + ' UTC').toISOString().slice(0, 10) : null,
        description]))!.id;
      for (const g of split(listedIn)) { const gid = await lookup('genres', g); statements++; await q.query(`INSERT INTO title_genres VALUES ($1, $2)`, [id, gid]); }
      for (const c of split(country)) { const cid = await lookup('countries', c); statements++; await q.query(`INSERT INTO title_countries VALUES ($1, $2)`, [id, cid]); }
      let ord = 0;
      for (const p of split(cast)) { const pid = await lookup('people', p); statements++; await q.query(`INSERT INTO title_cast VALUES ($1, $2, $3)`, [id, pid, ord++]); }
      ord = 0;
      for (const p of split(director)) { const pid = await lookup('people', p); statements++; await q.query(`INSERT INTO title_directors VALUES ($1, $2, $3)`, [id, pid, ord++]); }
    }
  }, { statementTimeoutMs: 0 });
  return statements;
}
