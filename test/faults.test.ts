// Fault suite (README "Endpoints", the database unavailable): real server processes (server/main.ts) while PostgreSQL ends their connections, stops for
// 10 s, or two instances with skewed clocks share the job schedule. Every wait is a poll with a generous deadline;
// the figures (outage status counts, recovery seconds, runs per tick) are printed for the record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createDatabase, type TestDatabase } from './helpers/db.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';
import { createUser, sessionCookie } from './helpers/auth.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { startEmbedded, freePort } from '../server/db/embedded.ts';
import { migrate } from '../server/db/migrate.ts';
import { createApp } from '../server/app.ts';
import { startJobs } from '../server/jobs/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, deadlineMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

/** A reports directory of its own: a mart, a report reading it, and a live report that can stream many rows. */
function fixtureDirs() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-faults-'));
  fs.mkdirSync(path.join(dir, 'reports', 'marts'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'dashboards'));
  fs.writeFileSync(path.join(dir, 'reports', 'marts', 'mart_fault_a.sql'),
    '-- @mart mart_fault_a\n-- @unique n\n-- @refresh 0 3 * * *\nSELECT g AS n FROM generate_series(1, 10) g\n');
  fs.writeFileSync(path.join(dir, 'reports', 'fault_mart.sql'),
    '-- @title Mart rows\n-- @marts mart_fault_a\n-- @chart bar x=n:Q y=n:Q\nSELECT n FROM mart_fault_a ORDER BY n\n');
  fs.writeFileSync(path.join(dir, 'reports', 'fault_live.sql'),
    '-- @title Live rows\n-- @param n int min=1 max=1000000 default=5\n-- @rowcap 1000000\n-- @timeout 60000\n' +
    "-- @chart line x=i:Q y=i:Q\nSELECT g AS i, repeat('x', 150) AS pad FROM generate_series(1, :n) g ORDER BY g\n");
  return { dir, reports: path.join(dir, 'reports'), dashboards: path.join(dir, 'dashboards') };
}

type Server = ServerProcess;
const startServer = startServerProcess;

/** GET on a fresh connection (no keep-alive reuse across an outage). */
function get(url: string, cookie?: string): Promise<{ status: number; retryAfter: string | null; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: cookie ? { cookie } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: (res.headers['retry-after'] as string) ?? null, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
  });
}

function post(url: string, cookie: string, body: unknown): Promise<{ status: number; retryAfter: string | null; body: string }> {
  return fetch(url, { method: 'POST', headers: { cookie, origin: new URL(url).origin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() }));
}

const SERVER_BACKENDS = `SELECT pid, state, wait_event_type, application_name, query FROM pg_stat_activity
  WHERE datname = current_database() AND application_name IN ('marquee', 'marquee changes') AND pid <> pg_backend_pid()`;

async function terminate(q: Db, pids: number[]) {
  for (const pid of pids) await q.query('SELECT pg_terminate_backend($1)', [pid]);
}

/** Polls a page until it answers 200; every answer meanwhile must be 200 or 503 with Retry-After (never 500). */
/** SIGTERM, then the exit status must be 0 (a server never started is nothing to stop). */
async function stopsCleanly(s: Server | undefined) {
  const code = await s?.stop();
  if (s) assert.is(code, 0, `the server stops cleanly:\n${s.out().slice(-2000)}`);
}

async function servesAgain(s: Server, url: string, cookie: string, what: string) {
  const seen: number[] = [];
  await until(`${what}: serving again`, async () => {
    const r = await get(url, cookie);
    seen.push(r.status);
    assert.ok(r.status === 200 || (r.status === 503 && r.retryAfter), `${what}: answered ${r.status} ${r.body.slice(0, 300)}`);
    return r.status === 200;
  });
  assert.ok(s.alive(), `${what}: the server process died:\n${s.out()}`);
  return seen;
}

test('pg_terminate_backend on every kind of connection the server holds: it lives and serves again', async () => {
  const fx = fixtureDirs();
  const td: TestDatabase = await createDatabase();
  await td.db.close(); // its pool is named "marquee" too: only the server's backends may carry that name here
  const q = createDb(td.url, { applicationName: 'marquee-fault-test', onError: () => {} });
  let s: Server | undefined;
  try {
    const admin = await createUser(q, { role: 'admin' });
    const cookie = await sessionCookie(q, admin.id);
    s = await startServer({ DATABASE_URL: td.url, MARQUEE_REPORTS_DIR: fx.reports, MARQUEE_DASHBOARDS_DIR: fx.dashboards });
    const live = `${s.url}/api/reports/fault_live?n=5`;
    const mart = `${s.url}/api/reports/fault_mart`;
    await until('the startup refresh of the mart', async () => (await get(mart, cookie)).status === 200);

    // 1. pooled idle connections (and the listener, started by the session cache on the first signed-in request)
    await Promise.all(Array.from({ length: 6 }, () => get(live, cookie)));
    const idle = await until('idle pooled connections', async () => {
      const rows = (await q.query(SERVER_BACKENDS)).filter((r) => r.application_name === 'marquee' && r.state === 'idle');
      return rows.length ? rows : null;
    });
    await terminate(q, idle.map((r) => r.pid));
    await servesAgain(s, live, cookie, 'pooled idle terminated');

    // 2. the LISTEN connection: it reconnects by itself
    const listener = await until('the change-feed listener', async () =>
      (await q.query(SERVER_BACKENDS)).find((r) => r.application_name === 'marquee changes'));
    await terminate(q, [listener.pid]);
    await until('the listener to reconnect', async () =>
      (await q.query(SERVER_BACKENDS)).find((r) => r.application_name === 'marquee changes' && r.pid !== listener.pid));
    await servesAgain(s, live, cookie, 'listener terminated');

    // 3. a CSV cursor: the response is paused after its first bytes, so the connection sits idle in its transaction
    const csv = await new Promise<{ res: http.IncomingMessage; req: http.ClientRequest }>((resolve, reject) => {
      const req = http.get(`${s!.url}/api/reports/fault_live.csv?n=200000`, { agent: false, headers: { cookie } }, (res) => {
        res.once('data', () => { res.pause(); resolve({ res, req }); });
        res.on('error', () => {});
      });
      req.on('error', reject);
    });
    assert.is(csv.res.statusCode, 200);
    const cursor = await until('the CSV cursor idle in its transaction', async () =>
      (await q.query(SERVER_BACKENDS)).find((r) => r.application_name === 'marquee' && r.state === 'idle in transaction' && /report_csv/.test(r.query)));
    await terminate(q, [cursor.pid]);
    const ended = new Promise<string>((resolve) => {
      csv.res.on('end', () => resolve('end'));
      csv.res.on('aborted', () => resolve('aborted'));
      csv.res.on('close', () => resolve('close'));
    });
    csv.res.resume();
    await ended; // the body stops early (cut off), it does not hang
    await servesAgain(s, live, cookie, 'CSV cursor terminated');

    // 4. POST /api/marts/refresh while the test holds the mart's table: the connection holding the refresh advisory lock
    //    is checked out and idle (terminated first), the refresh's own transaction is in a query (terminated next)
    let refresh!: Promise<{ status: number; retryAfter: string | null; body: string }>;
    await q.withClient(async (c) => {
      await c.query('BEGIN');
      await c.query('LOCK TABLE mart_fault_a IN ACCESS EXCLUSIVE MODE');
      refresh = post(`${s!.url}/api/marts/refresh`, cookie, {});
      const holder = await until('the advisory lock holder', async () => (await q.query(`SELECT l.pid, a.state FROM pg_locks l
        JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'marquee'
        AND a.datname = current_database() AND a.state = 'idle'`))[0]);
      const waiting = await until('the refresh waiting on the table lock', async () =>
        (await q.query(SERVER_BACKENDS)).find((r) => r.application_name === 'marquee' && r.state === 'active' && r.wait_event_type === 'Lock'));
      assert.is(holder.state, 'idle', 'the lock holder is checked out and idle');
      await terminate(q, [holder.pid]);
      await sleep(300); // give an unhandled 'error' event the chance to kill the process (it must not)
      assert.ok(s!.alive(), `terminating the lock holder killed the server:\n${s!.out()}`);
      await terminate(q, [waiting.pid]);
      await c.query('COMMIT');
    });
    const r = await refresh;
    assert.ok(r.status === 503 && r.retryAfter, `the refresh in flight fails cleanly: ${r.status} ${r.body}`);
    assert.ok(s.alive(), s.out());
    const again = await until('a refresh that runs again', async () => {
      const x = await post(`${s!.url}/api/marts/refresh`, cookie, {});
      assert.ok([200, 409, 503].includes(x.status), `${x.status} ${x.body}`);
      return x.status === 200 ? x : null;
    });
    assert.match(again.body, /"ok":true/);
    await servesAgain(s, mart, cookie, 'lock holder and query terminated');
    assert.not.match(s.out(), /Unhandled|uncaught/i);
  } finally {
    await stopsCleanly(s);
    await q.close().catch(() => {});
    await td.drop();
    fs.rmSync(fx.dir, { recursive: true, force: true });
  }
});

test('a pool that cannot get a connection in time answers 503 with Retry-After', async () => {
  const td = await createDatabase();
  const small = createDb(td.url, { max: 1, connectionTimeoutMs: 300, onError: () => {} });
  try {
    const admin = await createUser(td.db, { role: 'admin' });
    const cookie = await sessionCookie(td.db, admin.id);
    const app = createApp({ db: small, log: () => {} });
    let release!: () => void;
    const held = small.withClient(() => new Promise<void>((r) => { release = r; }));
    try {
      await until('the only connection checked out', async () => small.pool.idleCount === 0 && small.pool.totalCount === 1);
      for (const p of ['/api/reports', '/reports']) {
        const res = await app.request(p, { headers: { cookie } });
        assert.is(res.status, 503, `${p}: ${await res.text()}`);
        assert.ok(Number(res.headers.get('retry-after')) > 0, `${p}: Retry-After`);
      }
    } finally {
      release();
      await held;
    }
  } finally {
    await small.close().catch(() => {});
    await td.drop();
  }
});

test('database stopped 10 s under load: 503 + Retry-After meanwhile, /readyz red, serving again within 5 s', async () => {
  const fx = fixtureDirs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-outage-'));
  fs.chmodSync(dir, 0o711);
  const port = await freePort();
  let pg = await startEmbedded({ dataDir: dir, fast: true, port, log: () => {} });
  const q = createDb(pg.url, { applicationName: 'marquee-fault-test', onError: () => {} });
  let s: Server | undefined;
  try {
    await migrate(q);
    const admin = await createUser(q, { role: 'admin' });
    const cookie = await sessionCookie(q, admin.id);
    await q.close();
    s = await startServer({ DATABASE_URL: pg.url, MARQUEE_REPORTS_DIR: fx.reports, MARQUEE_DASHBOARDS_DIR: fx.dashboards });
    const report = `${s.url}/api/reports/fault_live?n=5`;
    assert.is((await get(report, cookie)).status, 200);

    // bounded load: 4 loops, one request at a time each, to a signed-in report and /readyz
    // 'stopping' and 'restarting' hold the requests that overlap PostgreSQL going away or coming back: a /readyz
    // answer counts for a phase only when the request started and ended in it (one that was sent during the outage
    // and answered after the restart is green, rightly)
    let phase: 'before' | 'stopping' | 'down' | 'restarting' | 'after' = 'before';
    let stopLoad = false;
    const counts: Record<string, Record<string, number>> = { before: {}, stopping: {}, down: {}, restarting: {}, after: {} };
    const readyz: Record<string, number[]> = { before: [], stopping: [], down: [], restarting: [], after: [] };
    const bad: string[] = [];
    let backAt = 0, firstOk = 0;
    const loop = async (target: string) => {
      while (!stopLoad) {
        const p = phase;
        let key: string;
        try {
          const r = await get(target, cookie);
          key = String(r.status);
          if (r.status === 503 && !r.retryAfter) bad.push(`503 without Retry-After from ${target}`);
          if (r.status !== 200 && r.status !== 503) bad.push(`${r.status} from ${target}: ${r.body.slice(0, 200)}`);
          if (target.endsWith('/readyz') && phase === p) readyz[p].push(r.status);
          if (p === 'after' && r.status === 200 && target === report && !firstOk) firstOk = Date.now();
        } catch (e: any) {
          key = `error ${e.code ?? e.message}`;
          bad.push(`${target}: ${e.message}`);
        }
        counts[p][key] = (counts[p][key] ?? 0) + 1;
        await sleep(50);
      }
    };
    const loops = [loop(report), loop(report), loop(report), loop(`${s.url}/readyz`)];
    await sleep(1000);
    phase = 'stopping';
    await pg.stop();
    phase = 'down';
    await sleep(10_000);
    phase = 'restarting';
    pg = await startEmbedded({ dataDir: dir, fast: true, port, log: () => {} });
    backAt = Date.now();
    phase = 'after';
    await until('a 200 after the restart', async () => firstOk > 0, 30_000);
    await sleep(1000);
    stopLoad = true;
    await Promise.all(loops);
    const recovery = (firstOk - backAt) / 1000;
    console.log(`[faults] outage: status counts ${JSON.stringify(counts)}; /readyz during the outage ${JSON.stringify(
      readyz.down.reduce<Record<number, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {}))}; serving again ${recovery.toFixed(2)} s after PostgreSQL was back`);
    assert.equal(bad, [], 'only 200 and 503 + Retry-After, no connection errors');
    assert.ok(s.alive(), s.out());
    assert.ok((counts.down['503'] ?? 0) > 0, 'requests during the outage answered 503');
    assert.ok(readyz.down.length > 0 && readyz.down.every((x) => x === 503), `/readyz red during the outage: ${readyz.down}`);
    assert.ok(recovery <= 5, `serving again ${recovery} s after the database came back`);
    assert.not.match(s.out(), /Unhandled|uncaught/i);
  } finally {
    await stopsCleanly(s);
    await q.close().catch(() => {});
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(fx.dir, { recursive: true, force: true });
  }
});

test('two server processes with clocks 30 ms apart: each job tick runs once', async () => {
  const fx = fixtureDirs();
  const td = await createDatabase();
  const env = { DATABASE_URL: td.url, MARQUEE_REPORTS_DIR: fx.reports, MARQUEE_DASHBOARDS_DIR: fx.dashboards, MARQUEE_TEST_TICK_JOB: '1' };
  let a: Server | undefined, b: Server | undefined;
  try {
    [a, b] = await Promise.all([startServer({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: '0' }), startServer({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: '30' })]);
    const both = Date.now();
    // 12 ticks with both running (plus margins), then stop both
    const runsOf = (out: string) => [...out.matchAll(/test\.tick ran for (\S+) attempt (\d+)/g)].map((m) => m[1]);
    await until('12 ticks run while both run', async () =>
      new Set([...runsOf(a!.out()), ...runsOf(b!.out())].filter((t) => Date.parse(t) > both + 1000)).size >= 13, 60_000, 250);
    const last = Date.now() - 1000;
    await Promise.all([a.stop(), b.stop()]);
    const runs = new Map<string, number>();
    const ranA = runsOf(a.out()), ranB = runsOf(b.out());
    for (const t of [...ranA, ...ranB]) runs.set(t, (runs.get(t) ?? 0) + 1);
    const window = [...runs.keys()].filter((t) => Date.parse(t) > both + 1000 && Date.parse(t) < last).sort();
    const rows = await td.db.query<{ scheduled_at: Date; attempts: number; outcome: string }>(
      `SELECT scheduled_at, attempts, outcome FROM job_runs WHERE job = 'test.tick' AND scheduled_at > $1 AND scheduled_at < $2 ORDER BY 1`,
      [new Date(both + 1000), new Date(last)]);
    const perTick = window.map((t) => runs.get(t)!);
    const histogram = perTick.reduce<Record<number, number>>((m, n) => ((m[n] = (m[n] ?? 0) + 1), m), {});
    console.log(`[faults] two instances (clock skew 30 ms): ${window.length} ticks, runs per tick ${JSON.stringify(histogram)} ` +
      `(instance A ran ${ranA.length}, B ran ${ranB.length}); job_runs rows ${rows.length}, attempts ${JSON.stringify([...new Set(rows.map((r) => r.attempts))])}`);
    assert.ok(window.length >= 10, `ticks observed: ${window.length}`);
    assert.ok(perTick.every((n) => n === 1), `runs per tick: ${JSON.stringify(Object.fromEntries(window.map((t) => [t, runs.get(t)])))}`);
    assert.is(rows.length, window.length, 'one claim row per tick');
    assert.ok(rows.every((r) => r.attempts === 1 && r.outcome === 'done'), JSON.stringify(rows));
    // every second in the window was claimed: no tick lost between the two
    for (let t = Date.parse(window[0]); t <= Date.parse(window[window.length - 1]); t += 1000) {
      assert.ok(runs.has(new Date(t).toISOString()), `tick ${new Date(t).toISOString()} did not run`);
    }
  } finally {
    await Promise.all([a?.stop(), b?.stop()]);
    await td.drop();
    fs.rmSync(fx.dir, { recursive: true, force: true });
  }
});

test('a claimed run that died unfinished (lease expired) is run again', async () => {
  const td = await createDatabase();
  try {
    const at = new Date('2026-01-01T03:00:00Z');
    await td.db.query(`INSERT INTO job_runs (job, scheduled_at, claimed_by, lease_until) VALUES ('test.recover', $1, 'dead:1', now() - interval '1 second')`, [at]);
    const ran: { at: string; attempt: number }[] = [];
    const jobs = startJobs(td.db, [{ name: 'test.recover', schedule: '0 0 1 1 *', run: async (_db, _now, tick) => { ran.push({ at: tick!.scheduledAt.toISOString(), attempt: tick!.attempt }); } }],
      () => {}, undefined, { leaseMs: 1000 });
    try {
      await until('the dead run to be run again', async () => ran.length > 0, 20_000);
    } finally {
      await jobs.stop();
    }
    assert.equal(ran, [{ at: at.toISOString(), attempt: 2 }]);
    const row = await td.db.one(`SELECT claimed_by, attempts, outcome, finished_at FROM job_runs WHERE job = 'test.recover'`);
    assert.is(row!.claimed_by, jobs.instance);
    assert.is(row!.outcome, 'done');
    assert.ok(row!.finished_at);
  } finally {
    await td.drop();
  }
});

test.run();
