// npm run bench -- load [--scale=default|large] [--base=<database>] [--reuse-run] [--seconds=60] [--people=50] [--staff=10] [--renewals=1000] [--mart-every=30]
//
// The live business under load: a real server process (server/main.ts, its jobs on) on a simulated business, driven
// for --seconds by the live-traffic driver (etl/traffic/driver.ts) with --people concurrent people — --staff of them
// staff (half analysts on report pages, half managers on dashboards and their tiles), the rest subscribers and
// visitors browsing, searching, signing up, subscribing, watching, upgrading, cancelling — each starting a new visit as
// soon as the last one ends (no think time), while the billing jobs and mart refreshes run:
//   - billing: the scheduler's clock is put ahead (MARQUEE_TEST_CLOCK_SKEW_MS, at most 24 h) to just past the period
//     end of the --renewals-th next renewal, so billing.renewals' tick in the run has that many due, and dunning
//     retries due by then run at its :30 tick (the steps are stamped at their due instants, as after any catch-up);
//   - marts: the server reads a copy of sql/reports whose marts' @refresh is every --mart-every seconds, so the
//     scheduled refresh jobs (not a manual trigger) rebuild every mart several times during the run.
// Baseline in the same run: GET /healthz at 50 connections for 5 s (autocannon) before the load — the HTTP floor of
// this server on this machine now — and a /healthz probe (one at a time) during the load.
// Printed: per route class requests, p50, p99, max, errors (5xx and no answer: must be 0), 4xx (expected ones: declined
// cards 402, the canonical-URL redirects are 3xx), the ratio of p50/p99 to the floor; the job runs in the window.
// Exit status 1 when any request errored. The dataset is simulated once into a kept embedded PostgreSQL
// (MARQUEE_BENCH_DIR, default $TMPDIR/marquee-bench-load) or DATABASE_URL's server, database mqbench_load_<scale>,
// its marts built and its models trained once; each run works on a fresh copy of it (mqbench_load_<scale>_run), so
// every run finds the same renewals due. --base=<database> copies another bench's kept database of DATABASE_URL's
// server instead (e.g. mqbench_reports_large), untouched: the copy is migrated and prepared. --reuse-run runs on the
// last run's database as that run left it (no copy: at 1M the copy is ~30 GB and its first-start models ~25 min). BENCH_SERVER_LOG=<file> keeps the server's whole log (=1: its end, printed).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import sql from 'sql-template-tag';
import { createDb, withConnection, withDatabase, ident, type Db } from '../../server/db/index.ts';
import { startTraffic, formatClasses, type ClassFigures, type TrafficSummary } from '../../etl/traffic/driver.ts';
import { createStaffAccounts } from '../../etl/traffic/staff.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { ensureBenchDataset, fmt, keptBenchServer, record } from './lib.ts';
import { loadCatalog, ensureMarts, refreshMarts, dueMarts } from '../../server/reports/engine.ts';
import { firstStartModels } from '../../server/ml/churn-jobs.ts';
import { migrate } from '../../server/db/migrate.ts';

const root = path.resolve(import.meta.dirname, '../..');

export interface LoadOptions {
  scale: string;
  /** another bench's kept database to copy instead of mqbench_load_<scale> (read only: the copy is prepared) */
  base?: string;
  /** run on the last run's database as that run left it instead of a fresh copy (saves the copy: ~30 GB at 1M) */
  reuseRun?: boolean;
  seconds: number; people: number; staff: number; renewals: number; martEverySeconds: number; log: (l: string) => void }

export interface LoadFigures {
  /** GET /healthz at 50 connections before the load, and one at a time during it (ms). */
  floor: { p50: number; p99: number; rps: number };
  floorUnderLoad: { p50: number; p99: number };
  byClass: Record<string, ClassFigures>;
  requests: number; errors: number; clientErrors: number; seconds: number;
  jobs: { job: string; runs: number; outcomes: string }[];
  renewalsDue: number; renewalsWritten: number; martRefreshes: number;
  summary: TrafficSummary;
  loadAverage: number[];
}

const quantile = (xs: number[], q: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * q))]! : 0; };

/** A copy of sql/reports whose marts refresh every `seconds` (6-field cron), for the scheduled refreshes to run in the window. */
function fastMartReports(dir: string, seconds: number): string {
  const out = path.join(dir, 'reports');
  fs.cpSync(path.join(root, 'sql/reports'), out, { recursive: true });
  for (const f of fs.readdirSync(path.join(out, 'marts')).filter((n) => n.endsWith('.sql'))) {
    const p = path.join(out, 'marts', f);
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(/^-- @refresh .*$/m, `-- @refresh */${seconds} * * * * *`));
  }
  return out;
}

/**
 * The run's database: a copy (CREATE DATABASE … TEMPLATE) of a kept base — simulated once, its marts built and its
 * models trained once (a first start's work, not what is measured) — so every run starts from the same state: the
 * same renewals due in its window (a run renews them in its copy only), no earlier run's people.
 */
async function dataset(scale: string, foreignBase: string | undefined, reuseRun: boolean, log: (l: string) => void): Promise<{ url: string; db: Db; stop(): Promise<void> }> {
  const { serverUrl, stop } = await keptBenchServer('marquee-bench-load', log);
  const baseName = foreignBase ?? `mqbench_load_${scale}`, runName = `mqbench_load_${scale}_run`;
  if (reuseRun && await withConnection(serverUrl, (c) => c.one('SELECT 1 FROM pg_database WHERE datname = $1', [runName]))) {
    log(`--reuse-run: ${runName} as the last run left it`);
    const url = withDatabase(serverUrl, runName);
    const db = createDb(url, { max: 4, statementTimeoutMs: 0 });
    await migrate(db);
    return { url, db, stop: async () => { await db.close(); await stop(); } };
  }
  if (!foreignBase) {
    await withConnection(serverUrl, async (c) => {
      if (!(await c.one('SELECT 1 FROM pg_database WHERE datname = $1', [baseName]))) await c.query(`CREATE DATABASE ${ident(baseName)}`);
    });
    const baseUrl = withDatabase(serverUrl, baseName);
    const base = createDb(baseUrl, { max: 4, statementTimeoutMs: 0 });
    try {
      await ensureBenchDataset(base, baseUrl, scale, log);
      await prepare(base, log);
    } finally {
      await base.close();
    }
  }
  const t0 = performance.now();
  await withConnection(serverUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${ident(runName)} WITH (FORCE)`);
    // the base's last connections may take a moment to go (55006: the template is being accessed)
    for (let i = 0; ; i++) {
      try { await c.query(`CREATE DATABASE ${ident(runName)} TEMPLATE ${ident(baseName)} STRATEGY FILE_COPY`); break; } catch (e: any) {
        if (e?.code !== '55006' || i >= 20) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  });
  log(`this run's copy of ${baseName}: ${runName} (${fmt((performance.now() - t0) / 1000)} s)`);
  const url = withDatabase(serverUrl, runName);
  const db = createDb(url, { max: 4, statementTimeoutMs: 0 });
  if (foreignBase) { await migrate(db); await prepare(db, log); }
  return { url, db, stop: async () => { await db.close(); await stop(); } };
}

/** A first start's work, done before the measured window: every mart built, a churn model trained and scores written. */
async function prepare(db: Db, log: (l: string) => void) {
  const catalog = loadCatalog();
  if ((await dueMarts(db, catalog, new Date(0))).length) {
    log('building every mart once…');
    await ensureMarts(db, catalog, { log });
    await refreshMarts(db, catalog, { trigger: 'manual', log });
  }
  await firstStartModels(db, log); // trains and scores once when there is no model
}

export async function runLoad(o: LoadOptions): Promise<LoadFigures> {
  const { log } = o;
  const data = await dataset(o.scale, o.base, o.reuseRun ?? false, log);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-load-'));
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    const { db } = data;
    const counts = await db.one<any>(`SELECT (SELECT count(*) FROM users WHERE simulated) AS customers,
      (SELECT count(*) FROM subscriptions WHERE status IN ('active', 'past_due')) AS live, (SELECT count(*) FROM watch_events) AS watch_events,
      (SELECT count(*) FROM titles) AS titles`);
    log(`dataset (${o.scale}): ${fmt(Number(counts.customers), 0)} simulated customers, ${fmt(Number(counts.live), 0)} live subscriptions, ` +
      `${fmt(Number(counts.watch_events), 0)} watch events, ${fmt(Number(counts.titles), 0)} titles`);

    // the scheduler's clock: just past the period end of the renewals-th next renewal (at most 24 h ahead)
    const nth = await db.one<{ pe: Date | null }>(sql`SELECT current_period_end AS pe FROM subscriptions
      WHERE status = 'active' AND current_period_end > now() ORDER BY current_period_end OFFSET ${Math.max(0, o.renewals - 1)} LIMIT 1`);
    const skewMs = Math.min(86_400_000, Math.max(0, (nth?.pe?.getTime() ?? Date.now()) + 1000 - Date.now() + 60_000));
    const aheadAt = new Date(Date.now() + skewMs);
    const due = await db.one<{ renewals: number; retries: number }>(sql`SELECT
      (SELECT count(*)::int FROM subscriptions WHERE status = 'active' AND current_period_end <= ${aheadAt}) AS renewals,
      (SELECT count(*)::int FROM subscriptions WHERE status = 'past_due') AS retries`);
    log(`billing: the scheduler's clock ${fmt(skewMs / 3_600_000, 2)} h ahead: ${fmt(due!.renewals, 0)} renewals due, ${fmt(due!.retries, 0)} subscriptions past due`);

    const staff = await createStaffAccounts(db, `bench-load-${Date.now().toString(36)}`);
    const reports = fastMartReports(tmp, o.martEverySeconds);
    const outbox = path.join(tmp, 'outbox');
    log('starting the server (its first mart refresh may take a while on a new dataset)…');
    server = await startServerProcess({
      DATABASE_URL: data.url, MARQUEE_REPORTS_DIR: reports, MARQUEE_OUTBOX_DIR: outbox, MARQUEE_SIGNUPS_PER_IP_HOUR: '1000000',
      MARQUEE_TEST_CLOCK_SKEW_MS: String(Math.round(skewMs)), MARQUEE_TRUST_PROXY: '1',
    });
    const base = server.url;
    // every mart refreshed once before the load (a new dataset's first refresh is not what is measured)
    const wait0 = Date.now();
    for (;;) {
      // populated under its current definition (a changed mart file is re-created empty at start: reports on it answer
      // 503 until its first build, which is not what this bench measures)
      const st = await db.one<{ missing: number }>(`SELECT count(*)::int AS missing FROM (SELECT unnest($1::text[]) AS m) x
        WHERE NOT EXISTS (SELECT 1 FROM report_marts r WHERE r.name = x.m AND r.as_of IS NOT NULL)`,
      [fs.readdirSync(path.join(reports, 'marts')).filter((n) => n.endsWith('.sql')).map((n) => n.slice(0, -4))]);
      if (!st!.missing) break;
      if (Date.now() - wait0 > 900_000) throw new Error(`marts not refreshed after 15 minutes:\n${server.out().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }

    // baseline: /healthz at 50 connections, 5 s, after 1 s of warm-up
    await autocannon({ url: `${base}/healthz`, connections: 50, duration: 1 });
    const hz = await autocannon({ url: `${base}/healthz`, connections: 50, duration: 5 });
    const floor = { p50: hz.latency.p50, p99: hz.latency.p99, rps: hz.requests.average };
    log(`baseline GET /healthz, 50 connections: p50 ${fmt(floor.p50)} ms, p99 ${fmt(floor.p99)} ms, ${fmt(floor.rps, 0)}/s`);

    const windowStart = new Date(Date.now() + skewMs);
    // renewal rows are dated at their due instants, among older ones: count them (payments are never deleted)
    const before = (await db.one<{ p: number; r: number }>(`SELECT (SELECT count(*)::int FROM payments WHERE kind = 'renewal') AS p,
      (SELECT coalesce(max(id), 0) FROM mart_refreshes) AS r`))!;
    const analysts = Math.ceil(o.staff / 2), managers = o.staff - analysts;
    const traffic = startTraffic({
      base, users: o.people - o.staff, rate: 1000, durationMs: o.seconds * 1000, maxRequests: 10_000_000, seed: 42,
      outboxDir: outbox, declineShare: 0.2, signupShare: 0.3, requestTimeoutMs: 30_000,
      staff: { analysts, managers, logins: staff }, log, forwardedFor: true, // 50 people, 50 addresses (as behind a load balancer)
    });
    const probe: number[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t0 = performance.now();
        await fetch(`${base}/healthz`).then((r) => r.text()).catch(() => '');
        probe.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    // what waits on a lock, sampled every 2 s (a lock queue shows up as slow or timed-out requests)
    const waits = new Map<string, number>();
    const sampler = setInterval(() => {
      void db.query<{ q: string; w: string }>(`SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS q, wait_event AS w FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`).then((rows) => {
        for (const r of rows) waits.set(`${r.w}: ${r.q}`, (waits.get(`${r.w}: ${r.q}`) ?? 0) + 1);
      }, () => {});
    }, 2000);
    const summary = await traffic.done;
    clearInterval(sampler);
    probing = false;
    await prober;
    if (waits.size) log(`lock waits seen (samples every 2 s):\n${[...waits].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, n]) => `  ${n}× ${k}`).join('\n')}`);
    const loadAverage = os.loadavg();
    const windowEnd = new Date(Date.now() + skewMs);

    const jobs = await db.query<{ job: string; runs: number; outcomes: string }>(sql`SELECT job, count(*)::int AS runs,
        string_agg(DISTINCT coalesce(outcome, 'running'), ', ') AS outcomes
      FROM job_runs WHERE scheduled_at >= ${windowStart} AND scheduled_at < ${windowEnd} GROUP BY job ORDER BY job`);
    const written = (await db.one<{ renewals: number; refreshes: number }>(sql`SELECT
      (SELECT count(*)::int - ${before.p} FROM payments WHERE kind = 'renewal') AS renewals,
      (SELECT count(*)::int FROM mart_refreshes WHERE id > ${before.r} AND error IS NULL) AS refreshes`))!;
    const errors = summary.serverErrors + summary.networkErrors;
    return {
      floor, floorUnderLoad: { p50: quantile(probe, 0.5), p99: quantile(probe, 0.99) }, byClass: summary.byClass,
      requests: summary.requests, errors, clientErrors: summary.clientErrors, seconds: summary.elapsedMs / 1000, jobs,
      renewalsDue: due!.renewals, renewalsWritten: written.renewals, martRefreshes: written.refreshes, summary, loadAverage,
    };
  } finally {
    const code = await server?.stop();
    const keep = process.env.BENCH_SERVER_LOG;
    if (server && keep && keep !== '1') { fs.writeFileSync(keep, server.out()); log(`server log written to ${keep}`); }
    else if (server && (code !== 0 || keep)) log(`server exited ${code}:\n${server.out().slice(-4000)}`);
    fs.rmSync(tmp, { recursive: true, force: true });
    await data.stop();
  }
}

export function formatLoad(f: LoadFigures, o: Pick<LoadOptions, 'people' | 'staff' | 'seconds' | 'scale'>): string[] {
  const x = (v: number, by: number) => (by > 0 ? `${fmt(v / by)}×` : '-');
  const lines = [
    `${o.people} people (${o.staff} staff) for ${fmt(f.seconds)} s on the ${o.scale} dataset: ${fmt(f.requests, 0)} requests ` +
      `(${fmt(f.requests / f.seconds, 0)}/s), errors ${f.errors} (must be 0), 4xx ${f.clientErrors}; load average ${f.loadAverage.map((l) => l.toFixed(2)).join(' ')}`,
    `baseline GET /healthz: 50 connections before the load p50 ${fmt(f.floor.p50)} ms, p99 ${fmt(f.floor.p99)} ms; ` +
      `one at a time during the load p50 ${fmt(f.floorUnderLoad.p50)} ms, p99 ${fmt(f.floorUnderLoad.p99)} ms`,
    `jobs in the window: ${f.jobs.map((j) => `${j.job} ×${j.runs} (${j.outcomes})`).join('; ') || 'none'}`,
    `billing: ${fmt(f.renewalsDue, 0)} renewals due, ${fmt(f.renewalsWritten, 0)} renewal payments written; marts: ${f.martRefreshes} refreshes`,
  ];
  const failing = Object.entries(f.summary.byKind).filter(([, st]) => Object.keys(st).some((c) => c === '0' || Number(c) >= 500))
    .sort(([a], [b]) => a.localeCompare(b));
  if (failing.length) {
    lines.push('errors by request kind (status×count; no answer = timeout or connection refused):',
      ...failing.map(([kind, st]) => `  ${kind.padEnd(30)} ${Object.keys(st).sort().map((c) => `${c === '0' ? 'no answer' : c}×${st[c]}`).join('  ')}`));
  }
  const table = formatClasses(f.byClass), names = Object.keys(f.byClass).sort((a, b) => a.localeCompare(b));
  lines.splice(2, 0, `${table[0]} ${'p50/floor'.padStart(10)} ${'p99/floor'.padStart(10)}`,
    ...names.map((n, i) => `${table[i + 1]} ${x(f.byClass[n]!.p50, f.floor.p50).padStart(10)} ${x(f.byClass[n]!.p99, f.floor.p99).padStart(10)}`));
  return lines;
}

const flag = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
if (import.meta.url.endsWith(process.argv[1]!.split('/').pop()!)) {
  const o: LoadOptions = {
    scale: flag('scale', 'default'), base: flag('base', '') || undefined, reuseRun: process.argv.includes('--reuse-run'), seconds: Number(flag('seconds', '60')), people: Number(flag('people', '50')), staff: Number(flag('staff', '10')),
    renewals: Number(flag('renewals', '1000')), martEverySeconds: Number(flag('mart-every', '30')), log: (l) => console.log(l),
  };
  const f = await runLoad(o);
  for (const l of formatLoad(f, o)) console.log(l);
  record(`${o.people} people, ${o.seconds} s: errors`, f.errors, 'requests', { max: 0 });
  for (const [name, c] of Object.entries(f.byClass)) {
    record(`${name} p50`, c.p50, 'ms', { baseline: 'GET /healthz p50, 50 connections', baselineValue: f.floor.p50 });
    record(`${name} p99`, c.p99, 'ms', { baseline: 'GET /healthz p99, 50 connections', baselineValue: f.floor.p99 });
    record(`${name} errors (5xx, no answer)`, c.serverErrors + c.networkErrors, 'requests', { max: 0 });
  }
  process.exit(f.errors ? 1 : 0);
}
