// npm run bench -- growth [--sizes=50000,200000] [--scale=large] [--reuse] [--use=<customers>:<database>] [--runs=5] [--live-cap=300]
// How cost grows with the customer base: for each size (customers; --scale=large adds 1,000,000) a simulated business
// (12 months, the default profile) on its own database, and per size: rows and bytes per table
// (pg_total_relation_size, marts included), the simulation's wall time, the full and then the incremental refresh of
// every mart, and the latency of representative reports run in-process with the result cache off (median of --runs),
// one of them also live (its marts inlined as CTEs, one run, cancelled at --live-cap seconds). Then the fit: the
// per-customer cost at each size against the smallest (1.00 = linear), the growth exponent b of cost ∝ customers^b
// between the two largest sizes, and the extrapolation to 10M and 100M customers along that exponent.
// Data: an embedded PostgreSQL kept under MARQUEE_BENCH_DIR (default $TMPDIR/marquee-bench-growth) or DATABASE_URL's
// server, databases mqbench_growth_<customers>. Each run simulates afresh unless --reuse (then the simulation time is
// the stored run's, from simulation_runs).
import os from 'node:os';
import { createDb, withConnection, withDatabase, ident, type Db } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { titlesDemoStep } from '../../etl/titles/demo-step.ts';
import { runParams } from '../../etl/simulator/params.ts';
import { runSimulation } from '../../etl/simulator/run.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport } from '../../server/reports/engine.ts';
import { withLiveVariants } from '../fixtures/bench-report-server.ts';
import { fmt, keptBenchServer, record, time } from './lib.ts';

const flag = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const has = (name: string) => process.argv.includes(`--${name}`);
const large = flag('scale', '') === 'large';
const sizes = flag('sizes', large ? '50000,200000,1000000' : '50000,200000').split(',').map(Number).sort((a, b) => a - b);
const runs = Number(flag('runs', '5'));
/** --use=1000000:mqbench_reports_large — measure that size on another bench's kept database of the same server (its
 *  simulation reused, as with --reuse) instead of simulating it again */
const use = new Map(flag('use', '').split(',').filter(Boolean).map((x) => {
  const m = /^(\d+):([a-z0-9_]+)$/.exec(x);
  if (!m) throw new Error(`--use takes <customers>:<database>, e.g. --use=1000000:mqbench_reports_large (got ${x})`);
  return [Number(m[1]), m[2]] as const;
}));
const liveCapMs = Number(flag('live-cap', '300')) * 1000;
const log = (l: string) => console.log(l);
/** mart-backed reports of each family (money, cohorts, viewing, daily), and one live report on the base tables */
const REPORTS = ['mrr_trend', 'cohort_customer_retention', 'most_watched_titles', 'daily_active_viewers', 'subscriptions_past_due'];
const LIVE = 'live_most_watched_titles';
const EXTRAPOLATE = [10_000_000, 100_000_000];

interface Size {
  customers: number;
  tables: { name: string; rows: number; bytes: number }[];
  totalRows: number; totalBytes: number; dbBytes: number;
  simMs: number; fullMs: number; incrementalMs: number;
  reports: Record<string, number>;
}

if (sizes.some((n) => !Number.isInteger(n) || n < 1000)) throw new Error('--sizes takes customer counts of at least 1000, e.g. --sizes=50000,200000');
const { serverUrl, stop } = await keptBenchServer('marquee-bench-growth', log);
const catalog = withLiveVariants(loadCatalog());
const results: Size[] = [];
try {
  log(`growth: ${sizes.map((n) => fmt(n, 0)).join(', ')} customers; ${os.cpus().length} CPUs, ${fmt(os.totalmem() / 2 ** 30, 0)} GiB RAM, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const n of sizes) results.push(await measure(n));
} finally {
  await stop();
}
report(results);

async function measure(customers: number): Promise<Size> {
  const given = use.get(customers);
  const dbName = given ?? `mqbench_growth_${customers}`;
  const exists = await withConnection(serverUrl, (c) => c.one('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]));
  if (given && !exists) throw new Error(`--use: no database ${given} on this server`);
  const reuse = (has('reuse') || !!given) && exists;
  if (!reuse) {
    await withConnection(serverUrl, async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${ident(dbName)} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${ident(dbName)}`);
    });
  }
  const db = createDb(withDatabase(serverUrl, dbName), { max: 10, statementTimeoutMs: 0 });
  try {
    await migrate(db);
    let simMs: number;
    if (reuse && (await db.one('SELECT 1 FROM simulation_runs WHERE finished_at IS NOT NULL'))) {
      simMs = (await db.one<{ ms: number }>(`SELECT extract(epoch FROM finished_at - started_at)::float8 * 1000 AS ms FROM simulation_runs ORDER BY id DESC LIMIT 1`))!.ms;
      log(`\n${fmt(customers, 0)} customers: reusing ${dbName} (simulated in ${fmt(simMs / 1000, 1)} s)`);
    } else {
      if (!(await titlesDemoStep.present(db))) await titlesDemoStep.load(db, () => {});
      log(`\n${fmt(customers, 0)} customers: simulating 12 months…`);
      const sim = await time(() => runSimulation(db, runParams({ users: customers, quiet: true }), {}));
      simMs = sim.ms;
      log(`  simulated ${fmt(sim.result.rows, 0)} rows in ${fmt(sim.ms / 1000, 1)} s`);
    }
    await db.query('ANALYZE');
    await ensureMarts(db, catalog, { log: () => {} });
    const full = await time(() => refreshMarts(db, catalog, { trigger: 'manual', full: true }));
    const incremental = await time(() => refreshMarts(db, catalog, { trigger: 'manual' }));
    for (const r of [...full.result.results, ...incremental.result.results]) if (!r.ok) throw new Error(`mart ${r.mart}: ${r.error}`);
    log(`  marts: full refresh ${fmt(full.ms / 1000, 1)} s, incremental ${fmt(incremental.ms / 1000, 1)} s`);
    await db.query('VACUUM ANALYZE');
    const tables = await tableSizes(db);
    const reports: Record<string, number> = {};
    for (const id of [...REPORTS, LIVE]) reports[id] = await latency(db, id, id === LIVE ? 1 : runs);
    log(`  reports (ms, cache off): ${Object.entries(reports).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ')}`);
    const dbBytes = (await db.one<{ b: number }>('SELECT pg_database_size(current_database())::float8 AS b'))!.b;
    return {
      customers, tables, totalRows: tables.reduce((a, t) => a + t.rows, 0), totalBytes: tables.reduce((a, t) => a + t.bytes, 0), dbBytes,
      simMs, fullMs: full.ms, incrementalMs: incremental.ms, reports,
    };
  } finally {
    await db.close();
  }
}

/** Every table of the schema with its exact row count and its bytes (heap, indexes, TOAST). */
async function tableSizes(db: Db) {
  const names = await db.query<{ name: string; bytes: number }>(`SELECT c.relname AS name, pg_total_relation_size(c.oid)::float8 AS bytes
    FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY bytes DESC, name`);
  const out: { name: string; rows: number; bytes: number }[] = [];
  for (const t of names) {
    // a partitioned table's size is its partitions' sum
    const parts = await db.one<{ b: number }>(`SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::float8 AS b FROM pg_partition_tree($1::regclass)`, [t.name]);
    const rows = (await db.one<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${ident(t.name)}`))!.n;
    out.push({ name: t.name, rows, bytes: Math.max(t.bytes, parts!.b) });
  }
  return out.sort((a, b) => b.bytes - a.bytes);
}

/** Median in-process time of the report with its default parameters, no result cache. */
async function latency(db: Db, id: string, n: number): Promise<number> {
  const report = catalog.reports.get(id)!;
  if (id === LIVE) report.timeoutMs = liveCapMs;
  const once = async () => (await time(() => runReport(db, catalog, id, new URLSearchParams(), { role: 'admin', now: new Date(), cache: false }))).ms;
  try {
    await once(); // warm: plans, the page cache
    const xs: number[] = [];
    for (let i = 0; i < n; i++) xs.push(await once());
    return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  } catch (e) {
    log(`  ${id}: ${(e as Error).message}`);
    return NaN;
  }
}

function report(rs: Size[]) {
  if (!rs.length) return;
  const small = rs[0], big = rs.at(-1)!, prev = rs.at(-2) ?? small;
  const k = (n: number) => (n >= 1e6 ? `${fmt(n / 1e6, 1)}M` : `${fmt(n / 1e3, 0)}k`);
  const bytes = (b: number) => (b >= 2 ** 30 ? `${fmt(b / 2 ** 30, 2)} GiB` : `${fmt(b / 2 ** 20, 0)} MiB`);
  const dur = (ms: number) => (!Number.isFinite(ms) ? 'n/a' : ms >= 7_200_000 ? `${fmt(ms / 3_600_000, 1)} h` : ms >= 120_000 ? `${fmt(ms / 60_000, 1)} min`
    : ms >= 1000 ? `${fmt(ms / 1000, 1)} s` : `${fmt(ms, ms < 10 ? 2 : 0)} ms`);

  log(`\nrows and bytes per table (largest first; marts included)`);
  const names = big.tables.filter((t) => t.bytes >= 1 << 20).map((t) => t.name);
  log(`| table | ${rs.map((r) => `rows ${k(r.customers)} | bytes ${k(r.customers)}`).join(' | ')} |`);
  log(`|---|${rs.map(() => '--:|--:').join('|')}|`);
  for (const name of names) {
    log(`| ${name} | ${rs.map((r) => { const t = r.tables.find((x) => x.name === name); return t ? `${fmt(t.rows, 0)} | ${bytes(t.bytes)}` : '– | –'; }).join(' | ')} |`);
  }
  log(`| all ${big.tables.length} tables | ${rs.map((r) => `${fmt(r.totalRows, 0)} | ${bytes(r.totalBytes)}`).join(' | ')} |`);

  // the fit: per-customer cost against the smallest size, exponent between the two largest, extrapolation
  const metrics: { name: string; unit: 'bytes' | 'ms' | 'rows'; get: (r: Size) => number }[] = [
    { name: 'rows, all tables', unit: 'rows', get: (r) => r.totalRows },
    { name: 'bytes, all tables', unit: 'bytes', get: (r) => r.totalBytes },
    { name: 'simulation (12 months)', unit: 'ms', get: (r) => r.simMs },
    { name: 'full refresh, all marts', unit: 'ms', get: (r) => r.fullMs },
    { name: 'incremental refresh, all marts', unit: 'ms', get: (r) => r.incrementalMs },
    ...[...REPORTS, LIVE].map((id) => ({ name: `report ${id}`, unit: 'ms' as const, get: (r: Size) => r.reports[id] })),
  ];
  const show = (unit: string, v: number) => (unit === 'bytes' ? bytes(v) : unit === 'ms' ? dur(v) : fmt(v, 0));
  log(`\nper-customer cost ÷ the ${k(small.customers)} run's (1.00 = linear); b: cost ∝ customers^b between ${k(prev.customers)} and ${k(big.customers)}; extrapolated along b or along the marginal cost between them, whichever is larger (and not below the largest size)`);
  log(`| what | ${rs.map((r) => k(r.customers)).join(' | ')} | per customer ${rs.slice(1).map((r) => k(r.customers)).join(' / ') || '-'} | b | ${EXTRAPOLATE.map(k).join(' | ')} |`);
  log(`|---|${rs.map(() => '--:').join('|')}|--:|--:|${EXTRAPOLATE.map(() => '--:').join('|')}|`);
  for (const m of metrics) {
    const v0 = m.get(small);
    const per = rs.slice(1).map((r) => (m.get(r) / r.customers) / (v0 / small.customers));
    const b = big === prev ? 1 : Math.log(m.get(big) / m.get(prev)) / Math.log(big.customers / prev.customers);
    // along b, or along the marginal cost between the two largest sizes (a fixed part + a per-customer part: the
    // catalog's rows do not grow with customers), whichever is larger, and never below the largest size's (a cost
    // that seemed to fall between two sizes is noise: a mart-backed report's rows do not shrink with customers)
    const slope = big === prev ? m.get(big) / big.customers : (m.get(big) - m.get(prev)) / (big.customers - prev.customers);
    const ex = EXTRAPOLATE.map((n) => Math.max(m.get(big) * (n / big.customers) ** b, m.get(big) + slope * (n - big.customers), m.get(big)));
    log(`| ${m.name} | ${rs.map((r) => show(m.unit, m.get(r))).join(' | ')} | ${per.map((x) => fmt(x, 2)).join(' / ') || '-'} | ${fmt(b, 2)} | ${ex.map((x) => show(m.unit, x)).join(' | ')} |`);
    const unit = m.unit === 'bytes' ? 'MiB' : m.unit === 'ms' ? 's' : 'rows';
    const scaleV = (v: number) => (m.unit === 'bytes' ? v / 2 ** 20 : m.unit === 'ms' ? v / 1000 : v);
    for (const r of rs) {
      record(`${k(r.customers)} customers: ${m.name}`, scaleV(m.get(r)), unit, r === small ? {} : {
        baseline: `${k(small.customers)} × ${fmt(r.customers / small.customers, 0)} (linear)`, baselineValue: scaleV(v0 * r.customers / small.customers),
      });
    }
    for (const [i, n] of EXTRAPOLATE.entries()) record(`${k(n)} customers (extrapolated): ${m.name}`, scaleV(ex[i]), unit);
  }
  log(`load average after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}
