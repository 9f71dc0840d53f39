// Shared by benchmarks: a database to measure on (DATABASE_URL, or a throwaway embedded PostgreSQL) and timing helpers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbedded } from '../../server/db/embedded.ts';
import { createDb, withConnection, withDatabase, ident, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { spawnSync } from 'node:child_process';
import { titlesDemoStep } from '../../etl/titles/demo-step.ts';

export interface BenchDb { url: string; db: Db; serverUrl: string; close(): Promise<void> }

/** A fresh, migrated database named `name` on DATABASE_URL's server or on a new embedded PostgreSQL. */
export async function benchDatabase(name: string): Promise<BenchDb> {
  let serverUrl = process.env.DATABASE_URL;
  let stop = async () => {};
  if (!serverUrl) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-bench-'));
    fs.chmodSync(dir, 0o711);
    const pg = await startEmbedded({ dataDir: dir, log: () => {}, maxConnections: 200 });
    serverUrl = pg.url;
    stop = async () => { await pg.stop(); fs.rmSync(dir, { recursive: true, force: true }); };
  }
  const dbName = `mqbench_${name}`;
  await withConnection(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${ident(dbName)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${ident(dbName)}`);
  });
  const url = withDatabase(serverUrl, dbName);
  const db = createDb(url, { max: 60, statementTimeoutMs: 600_000 });
  await migrate(db);
  return {
    url, db, serverUrl,
    async close() {
      await db.close();
      await withConnection(serverUrl!, (c) => c.query(`DROP DATABASE IF EXISTS ${ident(dbName)} WITH (FORCE)`)).catch(() => {});
      await stop();
    },
  };
}

/** DATABASE_URL's server, or an embedded PostgreSQL under MARQUEE_BENCH_DIR (default $TMPDIR/<dirName>) kept
 *  between runs, so a big dataset is built once. `stop` stops only what this call started. */
export async function keptBenchServer(dirName: string, log: (l: string) => void): Promise<{ serverUrl: string; stop(): Promise<void> }> {
  if (process.env.DATABASE_URL) return { serverUrl: process.env.DATABASE_URL, stop: async () => {} };
  const dir = process.env.MARQUEE_BENCH_DIR ?? path.join(os.tmpdir(), dirName);
  fs.mkdirSync(dir, { recursive: true, mode: 0o711 });
  fs.chmodSync(dir, 0o711);
  const pg = await startEmbedded({ dataDir: dir, log: () => {}, maxConnections: 200 });
  log(`embedded PostgreSQL under ${dir} (kept for later runs)`);
  return { serverUrl: pg.url, stop: () => pg.stop() };
}

export async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

export const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

// ── the result protocol: every bench records its key figures as rows; `npm run bench` (run.ts) gathers them ─────────
/** One figure of a benchmark. `ratio` = value ÷ baselineValue (unless the bench states its own); `met` = within target. */
export interface BenchRow {
  bench: string; metric: string; value: number; unit: string;
  baseline?: string; baselineValue?: number; ratio?: number; target?: string; met?: boolean;
}

/** Where run.ts collects the rows: a JSON-lines file it names per bench process. Unset: rows are only printed. */
export const RESULTS_ENV = 'MARQUEE_BENCH_RESULTS';

export interface RecordOptions {
  /** what the value is compared with, measured in the same run, and its value (same unit) */
  baseline?: string; baselineValue?: number;
  /** a ratio the bench computes itself (e.g. throughput ÷ baseline throughput); default value ÷ baselineValue */
  ratio?: number;
  /** target: value ≤ max, value ≥ min, or a stated target and whether it was met */
  max?: number; min?: number; target?: string; met?: boolean;
}

/** Records one figure (appended to $MARQUEE_BENCH_RESULTS as a JSON line); the bench keeps its own human output. */
export function record(metric: string, value: number, unit: string, o: RecordOptions = {}): BenchRow {
  const bench = process.env.MARQUEE_BENCH_NAME ?? path.basename(process.argv[1] ?? 'bench', '.ts');
  const row: BenchRow = { bench, metric, value, unit };
  if (o.baseline !== undefined) row.baseline = o.baseline;
  if (o.baselineValue !== undefined) row.baselineValue = o.baselineValue;
  const ratio = o.ratio ?? (o.baselineValue ? value / o.baselineValue : undefined);
  if (ratio !== undefined && Number.isFinite(ratio)) row.ratio = ratio;
  if (o.max !== undefined) { row.target = `≤ ${o.max} ${unit}`; row.met = value <= o.max; }
  if (o.min !== undefined) { row.target = `≥ ${o.min} ${unit}`; row.met = value >= o.min; }
  if (o.target !== undefined) row.target = o.target;
  if (o.met !== undefined) row.met = o.met;
  const file = process.env[RESULTS_ENV];
  if (file) fs.appendFileSync(file, JSON.stringify(row) + '\n');
  return row;
}

/** Migrates `db` and gives it the titles and a simulated business at `scale` unless it has them (kept for later runs). */
export async function ensureBenchDataset(db: Db, url: string, scale: string, log: (l: string) => void): Promise<void> {
  await migrate(db);
  if (!(await titlesDemoStep.present(db))) await titlesDemoStep.load(db, log);
  if (!(await db.one<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE simulated'))!.n) {
    log(`no simulated business yet: npm run simulate -- --scale ${scale} (once; later runs reuse it)`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', '--scale', scale, '--quiet'],
      { cwd: path.resolve(import.meta.dirname, '../..'), stdio: 'inherit', env: { ...process.env, DATABASE_URL: url } });
    if (r.status !== 0) throw new Error(`simulate failed with code ${r.status}`);
  }
  await db.query('ANALYZE');
}
