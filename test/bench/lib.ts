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

// ── a database floor: the same statements replayed by pgbench ────────────────────────────────────────────────────
/** One statement as the app sent it (test/helpers/query-count.ts keeps them), or a transaction's start or end. */
export type ReplayCall = { text: string; values: unknown[]; row?: Record<string, unknown> } | 'BEGIN' | 'COMMIT';

/** pgbench on this machine: on PATH, else the newest /usr/lib/postgresql/<version>/bin/pgbench; undefined when none. */
export function findPgbench(): string | undefined {
  const onPath = spawnSync('pgbench', ['--version'], { encoding: 'utf8' });
  if (onPath.status === 0) return 'pgbench';
  const base = '/usr/lib/postgresql';
  const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin/pgbench'))) : [];
  const v = versions.sort((a, b) => Number(b) - Number(a))[0];
  return v && path.join(base, v, 'bin/pgbench');
}

/** A value as PostgreSQL's text input reads it (what node-postgres sends for it); null for SQL NULL. */
function pgText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (Array.isArray(v)) {
    return `{${v.map((x) => { const t = pgText(x); return t === null ? 'NULL' : `"${t.replace(/[\\"]/g, (c) => `\\${c}`)}"`; }).join(',')}}`;
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * A pgbench script that sends `calls` again — the same statement texts and parameters, in the same transactions — once
 * per pgbench transaction. What must differ from one run to the next is rewritten: `perRun` maps a string of the
 * recorded values (the user id, a card token …) to a pgbench variable the script sets per run, and an id an earlier
 * statement returned (a number ≥ 1e9 found in a later value) is taken from that statement's answer (\gset). Every other
 * parameter is passed as it was recorded, through a variable (-D), so the statements stay parameterized as in the app.
 * Pick the recorded ids distinctive (≥ 1e9), so no amount or count is mistaken for one.
 */
export function pgbenchScript(calls: ReplayCall[], perRun: Record<string, string>, prelude: string[]): { script: string; defines: string[] } {
  const defines: string[] = [];
  const markers = Object.entries(perRun).map(([find, variable]) => ({ find, variable }));
  const lines = [...prelude];
  const gsets = new Map<number, string>();
  calls.forEach((c, i) => {
    if (c === 'BEGIN' || c === 'COMMIT' || !c.row) return;
    for (const [col, v] of Object.entries(c.row)) {
      if (!/^\d{10,}$/.test(String(v)) || Number(v) < 1e9 || markers.some((m) => m.find === String(v))) continue;
      const later = calls.slice(i + 1).some((x) => x !== 'BEGIN' && x !== 'COMMIT' && x.values.some((y) => (pgText(y) ?? '').includes(String(v))));
      if (later) { markers.push({ find: String(v), variable: `r${i}_${col}` }); gsets.set(i, `r${i}_`); }
    }
  });
  const constant = (s: string) => { defines.push(`k${defines.length}=${s}`); return `:k${defines.length - 1}::text`; };
  const expr = (v: unknown): string => {
    const s = pgText(v);
    if (s === null) return 'NULL';
    const whole = markers.find((m) => m.find === s);
    if (whole) return `:${whole.variable}`;
    const parts: string[] = [];
    let rest = s;
    for (;;) {
      const hit = markers.map((m) => ({ m, at: rest.indexOf(m.find) })).filter((h) => h.at >= 0).sort((a, b) => a.at - b.at)[0];
      if (!hit) break;
      if (hit.at > 0) parts.push(constant(rest.slice(0, hit.at)));
      parts.push(`:${hit.m.variable}::text`);
      rest = rest.slice(hit.at + hit.m.find.length);
    }
    if (!parts.length) { defines.push(`k${defines.length}=${s}`); return `:k${defines.length - 1}`; }
    if (rest) parts.push(constant(rest));
    // built from pieces: text, which the statement's own cast (or the column) turns into the recorded type
    return `(${parts.join(' || ')})`;
  };
  calls.forEach((c, i) => {
    if (c === 'BEGIN' || c === 'COMMIT') { lines.push(`${c};`); return; }
    const text = c.text.replace(/\$(\d+)/g, (_, n: string) => expr(c.values[Number(n) - 1]));
    lines.push(gsets.has(i) ? `${text} \\gset ${gsets.get(i)}` : `${text};`);
  });
  return { script: lines.join('\n') + '\n', defines };
}

export interface PgbenchResult { transactions: number; failed: number; exitCode: number | null; tps: number; p50: number; p99: number; max: number; output: string }

/** Runs `script` with pgbench (extended protocol, as node-postgres) at `clients` clients, `perClient` runs each; each
 *  run's latency from pgbench's per-transaction log. */
export function runPgbench(bin: string, url: string, script: string, defines: string[], clients: number, perClient: number): PgbenchResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-pgbench-'));
  try {
    const file = path.join(dir, 'script.sql');
    fs.writeFileSync(file, script);
    const r = spawnSync(bin, ['-n', '-M', 'extended', '-c', String(clients), '-j', String(Math.min(clients, os.cpus().length)),
      '-t', String(perClient), '-f', file, '-l', `--log-prefix=${path.join(dir, 'log')}`, ...defines.flatMap((d) => ['-D', d]), url],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const output = `${r.stdout}${r.stderr}`;
    const times = fs.readdirSync(dir).filter((f) => f.startsWith('log')).flatMap((f) => fs.readFileSync(path.join(dir, f), 'utf8')
      .split('\n').filter(Boolean).map((l) => Number(l.split(' ')[2]) / 1000));
    const sorted = times.sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? NaN);
    return { transactions: sorted.length, failed: clients * perClient - sorted.length, exitCode: r.status, tps, p50: at(50), p99: at(99),
      max: sorted.at(-1) ?? NaN, output };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
