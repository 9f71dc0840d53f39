// npm run bench -- reports [--scale=large] [--users=N] [--seed=S] [--duration=5] [--only=id,id] [--live-seconds=10]
//   [--live-cap=120] [--accept-encoding=identity] [--refresh=full,incremental|incremental|none] [--skip-live] [--skip-pgbench] [--skip-varied]
// On a simulated dataset (generated on first use and kept in the bench database): the time to rebuild every mart in
// full (first start, after a simulation run) and to refresh them incrementally (the scheduled steady state), then per report p50/p99/req/s at 50 connections through HTTP (mart-backed, the engine's hot path), beside
// (a) the same SQL run live with the marts inlined, (b) a trivial route of the same server, and (c) pgbench running
// the report's own statement (its SQL under the row cap's LIMIT, as the server runs it) against the database with 50 clients, and (d) with its caches off and parameters that vary per
// request (random months, plans, countries, genres… drawn from the report's declared @params) — all in one run.
// The data lives in DATABASE_URL's server (database mqbench_reports_<scale>) or in an embedded PostgreSQL under
// MARQUEE_BENCH_DIR (default <tmp>/marquee-bench-reports), reused by later runs; delete the directory to regenerate.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import autocannon from 'autocannon';
import { createDb, withConnection, withDatabase, ident } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { titlesDemoStep } from '../../etl/titles/demo-step.ts';
import { createSession, sessionCookieName } from '../../server/auth/session.ts';
import { loadCatalog, ensureMarts, refreshMarts, lookupOptions, statementOf, statementValues, type Catalog, type ReportDef } from '../../server/reports/engine.ts';
import { parseParams, type ParamDecl } from '../../server/reports/params.ts';
import { rngFor } from '../../etl/simulator/rng.ts';
import { fmt, keptBenchServer, record } from './lib.ts';

const root = path.resolve(import.meta.dirname, '../..');
const flag = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const has = (name: string) => process.argv.includes(`--${name}`);
const scale = flag('scale', 'large');
/** --users=N overrides the scale's customer count (e.g. when the 1,000,000 of large take too long to generate) */
const users = flag('users', '');
const seed = flag('seed', '');
const duration = Number(flag('duration', '5'));
const liveSeconds = Number(flag('live-seconds', '10'));
/** seconds one live query may take before it is cancelled (and reported as "> cap") */
const liveCap = Number(flag('live-cap', '120'));
const refreshModes = flag('refresh', 'full,incremental').split(',').filter((x) => x && x !== 'none');
const only = flag('only', '').split(',').filter(Boolean);
const CONNECTIONS = 50;
/** the Accept-Encoding every measured request sends: Chromium's by default (an analyst's browser gets the compressed
 *  answer); --accept-encoding=identity measures uncompressed answers */
const acceptEncoding = flag('accept-encoding', 'gzip, deflate, br, zstd');
const log = (l: string) => console.log(l);

// ── the database ──────────────────────────────────────────────────────────────────────────────────────────────────
const { serverUrl, stop: stopPg } = await keptBenchServer('marquee-bench-reports', log);
const dbName = users ? `mqbench_reports_u${Number(users)}` : `mqbench_reports_${scale}`;
await withConnection(serverUrl, async (c) => {
  if (!(await c.one('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]))) await c.query(`CREATE DATABASE ${ident(dbName)}`);
});
const url = withDatabase(serverUrl, dbName);
const dbIsLocal = ['127.0.0.1', 'localhost', '[::1]', '::1', ''].includes(new URL(url).hostname);
const db = createDb(url, { max: 10, statementTimeoutMs: 0 });

async function prepare() {
  await migrate(db);
  if (!(await titlesDemoStep.present(db))) {
    log('loading titles…');
    await titlesDemoStep.load(db, log);
  }
  const sim = await db.one<{ n: number }>('SELECT count(*) AS n FROM users WHERE simulated');
  if (!sim!.n) {
    const simArgs = ['--scale', scale, ...(users ? ['--users', String(Number(users))] : []), ...(seed ? ['--seed', seed] : [])];
    log(`no simulated business yet: npm run simulate -- ${simArgs.join(' ')} (once; later runs reuse it)`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', ...simArgs, '--quiet'],
      { cwd: root, stdio: 'inherit', env: { ...process.env, DATABASE_URL: url } });
    if (r.status !== 0) throw new Error(`simulate failed with code ${r.status}`);
    log(`simulated in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const counts = await db.query(`SELECT 'users' AS t, count(*) AS n FROM users UNION ALL SELECT 'subscription_events', count(*) FROM subscription_events
    UNION ALL SELECT 'payments', count(*) FROM payments UNION ALL SELECT 'visits', count(*) FROM visits UNION ALL SELECT 'watch_events', count(*) FROM watch_events`);
  log(`dataset (${users ? `${fmt(Number(users), 0)} customers` : scale}): ${counts.map((c) => `${c.t} ${fmt(c.n, 0)}`).join(', ')}`);
}

/**
 * Seconds to read every row of the event tables once (count(*) of each, one after another, with the server's parallel
 * workers): no full rebuild can take less, since every row feeds some mart.
 */
async function scanFloor(): Promise<number> {
  let total = 0;
  const parts: string[] = [];
  for (const t of ['subscription_events', 'payments', 'visits', 'watch_events']) {
    const t0 = performance.now();
    const r = await db.one<{ n: number }>(`SELECT count(*)::bigint AS n FROM ${t}`);
    const s = (performance.now() - t0) / 1000;
    total += s;
    parts.push(`${t} ${fmt(Number(r!.n), 0)} rows ${fmt(s, 2)} s`);
  }
  log(`floor: reading every event table once takes ${fmt(total, 1)} s (${parts.join(', ')})`);
  return total;
}

// ── measuring ─────────────────────────────────────────────────────────────────────────────────────────────────────
/** cpu: CPU milliseconds per answer of the server process and of every PostgreSQL process, over the measurement */
interface Measure { p50: number; p99: number; rps: number; ok: number; bad: number; cpu?: { server: number; db: number } }

// CPU time from /proc (Linux): the load generator shares the machine's cores, so req/s alone can be its limit rather
// than the server's; CPU per answer says what an answer costs the server and the database whoever asks
const TICK_MS = 1000 / (Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100);
function cpuTicks(pid: number | string): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch { return 0; } // gone (or not Linux)
}
/** CPU ticks of every postgres process now, by pid */
function postgresTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of fs.existsSync('/proc') ? fs.readdirSync('/proc') : []) {
    if (!/^\d+$/.test(pid)) continue;
    try { if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') ticks.set(pid, cpuTicks(pid)); } catch { /* gone */ }
  }
  return ticks;
}
/** the ticks postgres processes used since `before`: a process started since counts whole; one that ended since is
 *  not seen (its last moments are missed: an undercount, never a negative) */
function postgresTicksSince(before: Map<string, number>): number {
  let sum = 0;
  for (const [pid, t] of postgresTicks()) sum += Math.max(0, t - (before.get(pid) ?? 0));
  return sum;
}

/** `paths` (path + query of the same server): each request takes the next one, so parameters vary per request */
async function cannon(target: string, cookie: string, connections = CONNECTIONS, seconds = duration, paths?: string[], pid?: number): Promise<Measure> {
  let i = 0;
  const requests = paths?.length ? [{ setupRequest: (req: any) => ({ ...req, path: paths[i++ % paths.length] }) }] : undefined;
  const headers: Record<string, string> = { 'accept-encoding': acceptEncoding, ...(cookie ? { cookie } : {}) };
  const before = pid ? { server: cpuTicks(pid), db: postgresTicks() } : undefined;
  // PostgreSQL's processes are only seen when it runs on this machine
  const r = await autocannon({ url: target, connections, duration: seconds, headers, timeout: 600, requests });
  const answers = r['2xx'] + r.non2xx;
  const cpu = before && answers ? { server: ((cpuTicks(pid!) - before.server) * TICK_MS) / answers, db: dbIsLocal ? (postgresTicksSince(before.db) * TICK_MS) / answers : NaN } : undefined;
  return { p50: r.latency.p50, p99: r.latency.p99, rps: r.requests.average, ok: r['2xx'], bad: r.non2xx + r.errors + r.timeouts, cpu };
}

// ── parameters that vary per request ──────────────────────────────────────────────────────────────────────────────
const lookupCache = new Map<string, string[]>();
async function optionsOf(d: ParamDecl): Promise<string[]> {
  const key = d.values ? d.values.join(',') : d.lookup!;
  if (!lookupCache.has(key)) lookupCache.set(key, (await lookupOptions(db, d)).map(([v]) => v));
  return lookupCache.get(key)!;
}
const monthText = (d: Date, back: number) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - back, 1)).toISOString().slice(0, 7);
const dayText = (d: Date, back: number) => new Date(d.getTime() - back * 86_400_000).toISOString().slice(0, 10);

/**
 * `n` query strings for a report, drawn from its declared @params: months and dates inside the simulated year (a
 * from/to pair ordered), each multi-select empty half the time and otherwise 1–3 random options of its lookup, ints
 * inside their bounds, a random enum value or boolean. Seeded: every run asks the same questions.
 */
async function variedQueries(r: ReportDef, n: number, seed: number): Promise<string[]> {
  const rnd = rngFor(seed, 0, 0);
  const pick = (k: number) => Math.floor(rnd() * k);
  const now = new Date();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const q = new URLSearchParams();
    const back = { month: [pick(12), pick(12)].sort((a, b) => b - a), date: [pick(365), pick(365)].sort((a, b) => b - a) };
    for (const d of r.params) {
      if (d.type === 'month') q.set(d.name, monthText(now, d.name === 'to' ? back.month[1] : back.month[0]));
      else if (d.type === 'date') q.set(d.name, dayText(now, d.name === 'to' ? back.date[1] : back.date[0]));
      else if (d.type === 'int') {
        const lo = Number(d.min ?? 1), hi = Number(d.max ?? lo + 100);
        q.set(d.name, String(lo + pick(hi - lo + 1)));
      } else if (d.type === 'enum') q.set(d.name, d.values![pick(d.values!.length)]);
      else if (d.type === 'boolean') q.set(d.name, rnd() < 0.5 ? 'true' : 'false');
      else if (d.type === 'multi' && rnd() < 0.5) {
        const opts = await optionsOf(d);
        const k = 1 + pick(Math.min(3, opts.length));
        for (const v of new Set(Array.from({ length: k }, () => opts[pick(opts.length)]))) q.append(d.name, v);
      }
    }
    out.push(`/api/reports/${r.id}?${q}`);
  }
  return out;
}

/**
 * Sequential live requests for up to `seconds` (at least one): heavy live SQL cannot take 50 connections. A query
 * cancelled at the cap (the server's statement timeout for live_ reports, 503) counts as taking the cap: `capped`
 * says the true time is longer, so the live/mart ratio is a lower bound.
 */
async function live(target: string, cookie: string): Promise<Measure & { n: number; capped: number }> {
  const times: number[] = [];
  let bad = 0, capped = 0;
  const t0 = performance.now();
  while (times.length === 0 || (performance.now() - t0 < liveSeconds * 1000 && times.length < 50)) {
    const s = performance.now();
    const res = await fetch(target, { headers: { cookie } });
    await res.arrayBuffer();
    const took = performance.now() - s;
    if (res.status === 503 && took >= liveCap * 1000 * 0.9) capped++;
    else if (res.status !== 200) bad++;
    times.push(took);
    if (bad > 2 || capped) break;
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { p50: q(0.5), p99: q(0.99), rps: times.length / ((performance.now() - t0) / 1000), ok: times.length - bad - capped, bad, n: times.length, capped };
}

function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `ARRAY[${v.map((x) => `'${String(x).replace(/'/g, "''")}'`).join(', ')}]::text[]`;
  return `'${String(v).replace(/'/g, "''")}'`;
}

async function pgbench(r: ReportDef, sqlText: string, values: unknown[]): Promise<Measure | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-pgbench-'));
  try {
    const text = sqlText.replace(/\(\$(\d+)::/g, (_, n) => `(${literal(values[Number(n) - 1])}::`);
    fs.writeFileSync(path.join(dir, 'q.sql'), `${text};\n`);
    const res = spawnSync('pgbench', ['-n', '-c', String(CONNECTIONS), '-j', '2', '-T', String(duration), '-f', path.join(dir, 'q.sql'),
      '-l', '--log-prefix', path.join(dir, 'pgb'), url], { encoding: 'utf8', cwd: dir });
    if (res.status !== 0) { log(`  pgbench ${r.id} failed: ${(res.stderr || res.stdout).trim().split('\n').slice(-2).join(' ')}`); return undefined; }
    const tps = Number(/tps = ([\d.]+)/.exec(res.stdout)?.[1] ?? NaN);
    const lat: number[] = [];
    for (const f of fs.readdirSync(dir).filter((x) => x.startsWith('pgb'))) {
      for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const cols = line.split(' ');
        if (cols.length >= 3) lat.push(Number(cols[2]) / 1000);
      }
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
    return { p50: q(0.5), p99: q(0.99), rps: tps, ok: lat.length, bad: 0 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function startServer(cache = true): Promise<{ base: string; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/bench-report-server.ts'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_DB_URL: url, NODE_ENV: 'production', MARQUEE_REPORT_CACHE: cache ? '1' : '0', BENCH_LIVE_TIMEOUT_MS: String(liveCap * 1000) },
  });
  const base = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = /listening (\S+)/.exec(out); if (m) resolve(m[1].replace(/\/$/, '')); });
    child.once('exit', (code) => reject(new Error(`bench server exited ${code}`)));
  });
  return { base, pid: child.pid!, stop: () => new Promise((r) => { child.removeAllListeners('exit'); child.once('exit', () => r()); child.kill('SIGTERM'); }) };
}

async function sessionFor(role: string): Promise<string> {
  const email = `bench-${role}@bench.example`;
  let u = await db.one<{ id: number }>('SELECT id FROM users WHERE lower(email) = $1', [email]);
  u ??= await db.one<{ id: number }>(`INSERT INTO users (email, display_name, role) VALUES ($1, $2, $3) RETURNING id`, [email, `Bench ${role}`, role]);
  const s = await createSession(db, u!.id, new Date());
  return `${sessionCookieName(false)}=${s.token}`;
}

/**
 * Waits (up to 2 min) until no query of this database runs: a no-cache measurement of slow SQL leaves statements
 * running after its clients stopped (subscriptions_past_due's ran for seconds into the next report's measurement).
 */
async function settle() {
  for (let i = 0; i < 600; i++) {
    const busy = await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()`);
    if (!busy?.n) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** "0.21+0.05 ms": the server's and the database's CPU per answer */
const cpuText = (c: Measure['cpu']) => (c ? `${fmt(c.server, 2)}+${Number.isNaN(c.db) ? 'n/a' : fmt(c.db, 2)} ms` : '—');
const ms = (n: number) => (Number.isFinite(n) ? `${fmt(n, n < 10 ? 2 : 0)} ms` : 'n/a');

try {
  await prepare();
  const catalog: Catalog = loadCatalog();
  await ensureMarts(db, catalog, { log });
  await db.query('ANALYZE');
  // the floor of a full rebuild: every mart reads the event tables, so none can be faster than reading each once
  const floor = refreshModes.includes('full') ? await scanFloor() : 0;
  for (const mode of refreshModes) {
    if (mode !== 'full' && mode !== 'incremental') throw new Error(`--refresh takes full, incremental or none (got ${mode})`);
    log(`\n${mode === 'full' ? 'rebuilding every mart in full (first start, after a simulation run)' : 'refreshing every mart as the schedule does (incremental where @incremental)'}… load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
    const t0 = performance.now();
    // as the server would run it: MARQUEE_MART_PARALLEL builds at once (server/config.ts; default 3)
    const out = await refreshMarts(db, catalog, { trigger: 'manual', full: mode === 'full', parallel: Number(process.env.MARQUEE_MART_PARALLEL) || undefined });
    const total = (performance.now() - t0) / 1000;
    for (const r of out.results) {
      const how = r.mode === 'incremental' ? `incremental from ${r.since!.toISOString().slice(0, 10)}` : `full (${r.why})`;
      log(`  ${r.mart.padEnd(34)} ${r.ok ? `${fmt(r.rows ?? 0, 0).padStart(10)} rows ${fmt(r.ms / 1000, 2).padStart(7)} s  ${how}` : `FAILED ${r.error}`}`);
    }
    log(`${mode} refresh of all ${out.results.length} marts: ${fmt(total, 1)} s (target ≤ 60 s) ${total <= 60 ? 'OK' : 'MISSED'}; load average after ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
    record(`${mode} refresh of all ${out.results.length} marts (${users ? `${fmt(Number(users), 0)} customers` : scale})`, total, 's',
      { max: 60, ...(mode === 'full' ? { baseline: 'reading every event table once (count(*))', baselineValue: floor } : {}) });
  }
  if (!refreshModes.length) {
    const missing = await db.query(`SELECT name FROM report_marts WHERE as_of IS NULL`);
    if (missing.length) await refreshMarts(db, catalog, { trigger: 'manual' });
  }

  const server = await startServer();
  const uncachedServer = await startServer(false);
  const cookies = new Map<string, string>();
  try {
    const anyCookie = await sessionFor('admin');
    cookies.set('admin', anyCookie);
    await cannon(`${server.base}/healthz`, '', 10, 1); // warm up
    log(`\nmachine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')} (1/5/15 min) before measuring`);
    const trivial = await cannon(`${server.base}/healthz`, anyCookie, CONNECTIONS, duration, undefined, server.pid);
    log(`\n(b) trivial route GET /healthz at ${CONNECTIONS} connections: p50 ${ms(trivial.p50)}, p99 ${ms(trivial.p99)}, ${fmt(trivial.rps, 0)} req/s, CPU per answer ${cpuText(trivial.cpu)}`);
    if (trivial.cpu) record('GET /healthz: server CPU per answer', trivial.cpu.server, 'ms');
    const reports = [...catalog.reports.values()].filter((r) => !only.length || only.includes(r.id));
    log(`\n${'report'.padEnd(32)} ${'HTTP p50'.padStart(9)} ${'p99'.padStart(9)} ${'req/s'.padStart(8)} │ ${'no-cache p50'.padStart(12)} ${'p99'.padStart(9)} ${'req/s'.padStart(7)} │ ${'pgbench p50'.padStart(11)} ${'p99'.padStart(9)} ${'tps'.padStart(8)} ${'http/pgb'.padStart(8)} ${'nocache/pgb'.padStart(11)} │ ${'live p50'.padStart(10)} ${'live/mart'.padStart(9)} │ ${'varied p50'.padStart(10)} ${'p99'.padStart(9)} ${'req/s'.padStart(7)} │ ${'CPU/answer: server+db'.padStart(22)} ${'varied'.padStart(14)}`);
    const rows: string[] = [];
    for (const r of reports) {
      const role = r.roles[0];
      if (!cookies.has(role)) cookies.set(role, await sessionFor(role));
      const cookie = cookies.get(role)!;
      const target = `${server.base}/api/reports/${r.id}`;
      await settle();
      const first = await fetch(target, { headers: { cookie } });
      if (first.status !== 200) { log(`${r.id.padEnd(32)} HTTP ${first.status}: ${(await first.text()).slice(0, 200)}`); continue; }
      await first.arrayBuffer();
      // 1 s of the same load first, not measured: the report's code paths get compiled (JIT) before the clock runs,
      // as on a server that has been up for more than a second
      await cannon(target, cookie, CONNECTIONS, 1);
      const http = await cannon(target, cookie, CONNECTIONS, duration, undefined, server.pid);
      // a live report with @maxage is cached too (by time): its no-cache figures are its SQL on every request
      const cacheable = r.allMarts.length > 0 || r.catalog || r.maxAgeMs > 0;
      if (cacheable) await cannon(`${uncachedServer.base}/api/reports/${r.id}`, cookie, CONNECTIONS, 1);
      const nocache = cacheable ? await cannon(`${uncachedServer.base}/api/reports/${r.id}`, cookie) : http;
      const params = await parseParams(r.params, new URLSearchParams(), new Date(), async () => new Set());
      const pgb = has('skip-pgbench') ? undefined : await pgbench(r, statementOf(r).text, statementValues(r, params));
      let varied: Measure | undefined;
      if ((r.allMarts.length > 0 || r.catalog) && !has('skip-varied')) {
        const paths = await variedQueries(r, 2000, 42);
        await cannon(uncachedServer.base, cookie, CONNECTIONS, 1, paths);
        varied = await cannon(uncachedServer.base, cookie, CONNECTIONS, duration, paths, uncachedServer.pid);
      }
      let liveM: Awaited<ReturnType<typeof live>> | undefined;
      if (r.allMarts.length && !has('skip-live')) liveM = await live(`${server.base}/api/reports/live_${r.id}`, cookie);
      const line = `${(r.id + (r.allMarts.length ? '' : r.catalog ? ' (catalog)' : r.maxAgeMs ? ` (live, ${r.maxAgeMs / 1000} s)` : ' (live)')).padEnd(32)} ${ms(http.p50).padStart(9)} ${ms(http.p99).padStart(9)} ${fmt(http.rps, 0).padStart(8)} │ ` +
        `${ms(nocache.p50).padStart(12)} ${ms(nocache.p99).padStart(9)} ${fmt(nocache.rps, 0).padStart(7)} │ ` +
        `${ms(pgb?.p50 ?? NaN).padStart(11)} ${ms(pgb?.p99 ?? NaN).padStart(9)} ${fmt(pgb?.rps ?? NaN, 0).padStart(8)} ${(pgb ? fmt(http.rps / pgb.rps, 2) + '×' : 'n/a').padStart(8)} ${(pgb ? fmt(nocache.rps / pgb.rps, 2) + '×' : 'n/a').padStart(11)} │ ` +
        `${liveM ? ((liveM.capped ? '> ' : '') + ms(liveM.p50)).padStart(10) : '—'.padStart(10)} ${(liveM ? ((liveM.capped ? '> ' : '') + fmt(liveM.p50 / Math.max(http.p50, 0.01), 0) + '×') : '').padStart(9)} │ ` +
        `${varied ? `${ms(varied.p50).padStart(10)} ${ms(varied.p99).padStart(9)} ${fmt(varied.rps, 0).padStart(7)}` : '—'.padStart(10)} │ ` +
        `${cpuText(http.cpu).padStart(22)} ${cpuText(varied?.cpu).padStart(14)}` +
        `${varied?.bad ? `  [varied: ${varied.bad} non-2xx/errors]` : ''}` +
        `${http.bad ? `  [${http.bad} non-2xx/errors]` : ''}${liveM?.bad ? `  [live: ${liveM.bad} failed]` : ''}${liveM ? `  (live n=${liveM.n}${liveM.capped ? `, cancelled at the ${liveCap} s cap` : ''})` : ''}`;
      log(line);
      rows.push(line);
      record(`${r.id}: HTTP p99, ${CONNECTIONS} conns`, http.p99, 'ms', { baseline: 'GET /healthz p99', baselineValue: trivial.p99,
        target: '≤ 50 ms, every request 2xx', met: http.p99 <= 50 && http.ok > 0 && !http.bad });
      record(`${r.id}: HTTP req/s, ${CONNECTIONS} conns`, http.rps, 'req/s', {
        ...(pgb ? { baseline: 'pgbench tps, its SQL', baselineValue: pgb.rps } : {}),
        target: '≥ 1000 req/s and ≥ 0.5× pgbench', met: http.rps >= 1000 && (!pgb || http.rps / pgb.rps >= 0.5) });
      if (pgb) record(`${r.id}: no-cache p50`, nocache.p50, 'ms', { baseline: 'pgbench, its SQL', baselineValue: pgb.p50 });
      // what one answer costs the server and PostgreSQL: req/s on these shared cores is also bounded by the load generator
      const dbCpu = (c: NonNullable<Measure['cpu']>) => (Number.isNaN(c.db) ? {} : { baseline: 'PostgreSQL CPU per answer', baselineValue: c.db });
      if (http.cpu) record(`${r.id}: server CPU per answer (HTTP)`, http.cpu.server, 'ms', dbCpu(http.cpu));
      if (varied?.cpu) record(`${r.id}: server CPU per answer (varied)`, varied.cpu.server, 'ms', dbCpu(varied.cpu));
      if (liveM) record(`${r.id}: live SQL p50${liveM.capped ? ' (capped)' : ''}`, liveM.p50, 'ms', { baseline: 'HTTP p50 (mart)', baselineValue: http.p50 });
      if (varied) record(`${r.id}: varied params p99 (cache misses)`, varied.p99, 'ms', { baseline: 'GET /healthz p99', baselineValue: trivial.p99,
        max: 250, ...(varied.bad ? { met: false } : {}) });
    }
    const trivialAfter = await cannon(`${server.base}/healthz`, anyCookie);
    log(`\n(b) trivial route again after the reports: p50 ${ms(trivialAfter.p50)}, p99 ${ms(trivialAfter.p99)}, ${fmt(trivialAfter.rps, 0)} req/s`);
    log(`load average after: ${os.loadavg().map((l) => l.toFixed(1)).join(' / ')}`);
    log(`HTTP: autocannon, ${CONNECTIONS} connections, ${duration} s each after 1 s of unmeasured warm-up, same URL (defaults),`);
    log(`Accept-Encoding: ${acceptEncoding} (--accept-encoding=identity for uncompressed answers) — the`);
    log(`engine's hot path: session (in-memory while unchanged), role, params, mart generations (in-memory while unchanged),`);
    log(`the in-process result cache (mart-backed, @catalog and live reports with @maxage: "(live, N s)") or the SQL (other live reports), JSON of the spec.`);
    log(`no-cache: the same server code with MARQUEE_REPORT_CACHE=0, so every request runs the report's SQL (on its mart)`);
    log(`(live reports without @maxage have no cache: same figures). http/pgb and nocache/pgb = req/s ÷ pgbench tps.`);
    log(`pgbench: the report's own SQL (default params as literals), ${CONNECTIONS} clients, -j 2, ${duration} s. live: the SQL with its marts`);
    log(`inlined as CTEs, sequential requests for up to ${liveSeconds} s (p50 of those), each cancelled after ${liveCap} s ("> cap":`);
    log(`the true time is longer, the ratio a lower bound); live/mart = live p50 ÷ HTTP p50.`);
    log(`CPU/answer: CPU milliseconds of the server process + of every PostgreSQL process (/proc) over the measurement,`);
    log(`divided by its answers: what an answer costs whoever asks (the load generator shares the cores).`);
    log(`varied: the no-cache server, ${CONNECTIONS} connections, ${duration} s after 1 s of warm-up, each request the next of 2,000`);
    log(`seeded random parameter sets drawn from the report's @params (months/dates in the last year, from ≤ to; each`);
    log(`multi-select empty half the time, else 1–3 options of its lookup; ints in bounds): every request a cache miss.`);
  } finally {
    await server.stop();
    await uncachedServer.stop();
  }
} finally {
  await db.close();
  await stopPg();
}
