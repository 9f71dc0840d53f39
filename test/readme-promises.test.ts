// Promises the README makes that no other test checked, each tested as the README words it (the sentence is quoted
// above its test). Through public behaviour — HTTP status, the change feed's token, exit codes, rows in the database —
// so the tests survive refactors of the code behind them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import sql from 'sql-template-tag';
import { useDatabase, createDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest, loginAs, TEST_ORIGIN } from './helpers/auth.ts';
import { waitFor, holdInTransaction, waitForLockWaiter, waitForLockWait } from './helpers/sync.ts';
import { createApp } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { createDb } from '../server/db/index.ts';
import { migrate, readMigrations, SCHEMA_DIR } from '../server/db/migrate.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, streamCsv, type Catalog } from '../server/reports/engine.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { TitlesInputError } from '../etl/titles/errors.ts';
import type { Deps } from '../server/types.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
const root = path.resolve(import.meta.dirname, '..');
const FIXTURES = path.join(root, 'test/fixtures/reports/basic');
const ETL_FIXTURES = path.join(root, 'test/fixtures/etl');
let catalog: Catalog;

test.before(async () => {
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g, g FROM generate_series(0, 40) g`);
  catalog = loadCatalog(FIXTURES);
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
});

// "GET /readyz | 200 when the database answers within 1 s and all migrations are applied; 503 otherwise"
test('readiness: 503 "migrating" while a migration is pending, 200 once it is applied', async () => {
  const all = readMigrations(SCHEMA_DIR);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-migrations-'));
  const fresh = await createDatabase({ empty: true, label: 'promises_pending' });
  try {
    for (const m of all.slice(0, -1)) fs.copyFileSync(m.file, path.join(dir, path.basename(m.file)));
    await migrate(fresh.db, { dir });
    const app = createApp({ db: fresh.db, log: () => {} });
    const pending = await app.request('/readyz');
    assert.is(pending.status, 503);
    assert.is((await pending.json()).status, 'migrating');
    assert.is((await app.request('/healthz')).status, 200, 'alive all the same');
    await migrate(fresh.db);
    const ready = await app.request('/readyz');
    assert.is(ready.status, 200);
    assert.is((await ready.json()).status, 'ready');
  } finally {
    await fresh.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// "each report runs in a `READ ONLY` transaction with its `statement_timeout`"
test('reports run READ ONLY: a report whose SQL writes fails and writes nothing (page/API and CSV paths)', async () => {
  // a write hidden in a function call, so the SQL is a plain SELECT the engine accepts and wraps as it likes
  await t.db.query(`CREATE FUNCTION fx_delete_all() RETURNS int LANGUAGE plpgsql AS $$
    DECLARE n int; BEGIN DELETE FROM fx_source; GET DIAGNOSTICS n = ROW_COUNT; RETURN n; END $$`);
  const base = catalog.reports.get('fx_capped')!;
  const writer = { ...base, id: 'fx_writer', marts: [], allMarts: [], bindOrder: [], sql: 'SELECT fx_delete_all() AS i' };
  const withWriter = { ...catalog, reports: new Map([...catalog.reports, ['fx_writer', writer]]) };
  const count = async () => (await t.db.one<{ n: number }>('SELECT count(*)::int AS n FROM fx_source'))!.n;
  const before = await count();
  assert.ok(before > 0);
  const err = await runReport(t.db, withWriter, 'fx_writer', new URLSearchParams(), { role: 'admin', now: new Date(), cache: false })
    .then(() => null, (e) => e);
  assert.ok(err, 'the writing report failed');
  assert.match(String(err.message), /read-only transaction/, String(err.message));
  const csvErr = await streamCsv(t.db, withWriter, 'fx_writer', new URLSearchParams(), { role: 'admin', now: new Date() })
    .then(async (s) => { await new Response(s.body).text(); return null; }, (e) => e)
    .catch((e) => e);
  assert.ok(csvErr, 'the CSV path failed too');
  assert.match(String(csvErr.message), /read-only transaction/);
  assert.is(await count(), before, 'nothing was deleted');
});

// "`POST /api/marts/refresh` … | admin | refreshes those marts …, or all; 409 if one is running" (and the page button)
test('a refresh already running (here or on another instance): 409 from the API and the page button', async () => {
  const app = createApp({ db: t.db, catalog, log: () => {} } as Deps);
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  const other = createDb(t.url, { max: 2 }); // "another instance"
  // The other instance's refresh is held mid-run (inside its lock) by a row lock it provably waits on.
  const held = await holdInTransaction(t.url, [`SELECT 1 FROM report_marts WHERE name = 'mart_fx_daily' FOR NO KEY UPDATE`]);
  let release = held.release;
  try {
    const running = refreshMarts(other, catalog);
    await waitForLockWaiter(t.db, 'UPDATE report_marts');
    const api = await authedRequest(app, cookie, '/api/marts/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.is(api.status, 409);
    assert.match((await api.json()).error.message, /already running/);
    const page = await authedRequest(app, cookie, '/reports/refresh', { method: 'POST', body: {} });
    assert.is(page.status, 409);
    await held.release();
    release = async () => {};
    assert.ok((await running).ran);
    const after = await authedRequest(app, cookie, '/api/marts/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.is(after.status, 200, 'once it finished, a refresh runs');
    await after.arrayBuffer();
  } finally {
    await release();
    await other.close();
  }
});

/** A TCP relay to PostgreSQL that can go silent: while frozen, bytes are dropped both ways and nothing is closed. */
async function silentRelay(target: URL) {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client); sockets.add(upstream);
    client.on('data', (d) => { if (!frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!frozen) client.write(d); });
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on('close', close); upstream.on('close', close);
    client.on('error', close); upstream.on('error', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = new URL(target.href);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.href,
    freeze() { frozen = true; },
    thaw() { frozen = false; for (const s of sockets) s.destroy(); }, // connections that lost bytes are dead: cut them
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

// "A listener dropped without an error is noticed by a heartbeat (`SELECT 1` every 5 s, 2 s timeout): up to ~7 s of
// staleness then." … "While that connection is down … nothing is cached … it reconnects every second."
test('change feed heartbeat: a listener that goes silent (no error, no close) turns caching off; it comes back', async () => {
  const relay = await silentRelay(new URL(t.url));
  const db = createDb(relay.url, { max: 2, onError: () => {} });
  try {
    await waitFor('the feed to go live through the relay', () => db.changes.token('sessions') !== null);
    relay.freeze();
    const t0 = Date.now();
    await waitFor('the feed to notice the silent listener', () => db.changes.token('sessions') === null, { timeoutMs: 60_000, everyMs: 50 });
    const ms = Date.now() - t0;
    // ~7 s by the README; the bound only separates a heartbeat from none (TCP keepalive would take minutes)
    assert.ok(ms < 30_000, `noticed after ${ms} ms`);
    relay.thaw();
    await waitFor('the feed to reconnect', () => db.changes.token('sessions') !== null, { timeoutMs: 60_000, everyMs: 50 });
  } finally {
    await db.close().catch(() => {});
    await relay.close();
  }
});

// "Two loads never interleave (advisory lock)."
/** Starts load A of `file` and holds it after it took the load lock: it waits for a lock on titles this test holds,
 *  until `release()`. */
async function withHeldLoad(file: string, fn: (h: { loadsDb: ReturnType<typeof createDb>; a: ReturnType<typeof loadTitles>; release(): Promise<void> }) => Promise<void>) {
  const loadsDb = createDb(t.url, { max: 4, onError: () => {} });
  const held = await holdInTransaction(t.url, ['LOCK TABLE titles IN SHARE MODE']);
  let released = false;
  const release = async () => { if (!released) { released = true; await held.release(); } };
  try {
    const a = loadTitles(loadsDb, path.join(ETL_FIXTURES, file));
    await waitForLockWait(t.db, 'load A to wait on the titles lock', 'relation');
    await fn({ loadsDb, a, release });
  } finally {
    await release();
    await loadsDb.close();
  }
}

test('titles ETL: a second load waits for the first to commit, then finds every title unchanged', () =>
  withHeldLoad('base.csv', async ({ loadsDb, a, release }) => {
    const b = loadTitles(loadsDb, path.join(ETL_FIXTURES, 'base.csv'));
    await waitForLockWait(t.db, 'load B to wait on the load lock', 'advisory');
    await release();
    const [sa, sb] = await Promise.all([a, b]);
    assert.equal([sa.inserted, sa.unchanged], [sa.rows, 0], 'A loaded every title');
    assert.equal([sb.inserted, sb.updated, sb.unchanged], [0, 0, sa.rows], 'B ran after A committed');
  }));

test('titles ETL CLI: `npm run etl` beside a running load waits for it (no failure, no interleaving), then exits 0', () =>
  withHeldLoad('updated.csv', async ({ a, release }) => {
    const cli = spawn(process.execPath, ['--import', 'tsx', 'etl/load-titles.ts', '--quiet', path.join(ETL_FIXTURES, 'updated.csv')], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: t.url } });
    let out = '';
    cli.stdout.on('data', (d) => (out += d));
    cli.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => cli.once('exit', r));
    await waitForLockWait(t.db, 'the CLI load to wait on the load lock', 'advisory', 'marquee-etl');
    await release();
    const sa = await a;
    assert.is(await exited, 0, out);
    assert.ok(out.includes(`0 inserted, 0 updated, ${sa.rows} unchanged`), `the CLI ran after A committed:\n${out}`);
  }));

// "Memory stays flat (streams; a record is capped at 1 MB …)"; refused inputs: "exit 1, message `file:line: problem`,
// nothing written"
test('titles ETL: a record over 1 MB is refused with its line, nothing written; one under it loads', async () => {
  const header = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description';
  const row = (id: string, description: string) => `${id},Movie,Long ${id},,,,"September 9, 2021",2020,PG,90 min,Dramas,"${description}"`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bigrecord-'));
  // read from a file, as the CLI does (the stream delivers it in 64 KB chunks)
  const load = (rows: string[]) => {
    const file = path.join(dir, 'big.csv');
    fs.writeFileSync(file, [header, ...rows].join('\n') + '\n');
    return loadTitles(t.db, file);
  };
  const titles = async () => (await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM titles WHERE show_id LIKE 'big%'`))!.n;
  try {
    const err = await load([row('big1', 'ok'), row('big2', 'x'.repeat((1 << 20) + 1000)), row('big3', 'ok')]).then(() => null, (e) => e);
    assert.ok(err instanceof TitlesInputError, `${err} (${await titles()} titles written)`);
    assert.match(err.message, /big\.csv:3: .*longer than 1 MB/);
    assert.is(await titles(), 0, 'nothing written');
    // the same record arriving in one chunk (a pipe can deliver that much at once) is held to the same cap
    const whole = [header, row('big1', 'ok'), row('big2', 'x'.repeat((1 << 20) + 1000))].join('\n') + '\n';
    const oneChunk = await loadTitles(t.db, { name: 'stdin', stream: Readable.from([Buffer.from(whole)]) }).then(() => null, (e) => e);
    assert.ok(oneChunk instanceof TitlesInputError, String(oneChunk));
    assert.match(oneChunk.message, /stdin:3: .*longer than 1 MB/);
    assert.is(await titles(), 0, 'nothing written');
    const ok = await load([row('big1', 'ok'), row('big2', 'y'.repeat((1 << 20) - 4096))]);
    assert.is(ok.inserted, 2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// "The server refuses to start when a dashboard file is broken (file and reason)."
test('npm start refuses to start on a broken dashboard file, naming the file and the reason', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-dashboards-'));
  try {
    fs.copyFileSync(path.join(root, 'views/dashboards/executive_overview.json'), path.join(dir, 'executive_overview.json'));
    fs.writeFileSync(path.join(dir, 'broken.json'), JSON.stringify({ title: 'Broken', tiles: [{ report: 'no_such_report' }] }));
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DATABASE_URL: t.url, MARQUEE_DASHBOARDS_DIR: dir, PORT: '0', MARQUEE_DEMO: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.is(code, 1, out);
    assert.match(out, /could not start/);
    assert.match(out, /broken\.json/);
    assert.match(out, /no_such_report/);
    assert.not.match(out, /ready at/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// "HSTS when `MARQUEE_SECURE_COOKIES=1`"; "with `MARQUEE_SECURE_COOKIES=1` it is `__Host-mq_session` and Secure"
test('secure cookies: HSTS on every answer and a __Host- Secure session cookie; neither without', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  for (const secure of [true, false]) {
    const app = createApp({ db: t.db, config: defaultConfig({ secureCookies: secure }), log: () => {} });
    for (const p of ['/healthz', '/login', '/no-such-page']) {
      const hsts = (await app.request(p)).headers.get('strict-transport-security');
      if (secure) assert.match(hsts ?? '', /max-age=\d{7,}/, p); else assert.is(hsts, null, p);
    }
    const res = await app.request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: u.email, password: u.password }).toString() });
    assert.is(res.status, 303);
    const cookie = res.headers.getSetCookie().find((c) => /mq_session=/.test(c))!;
    if (secure) {
      assert.match(cookie, /^__Host-mq_session=/);
      assert.match(cookie, /; Secure/i);
      assert.match(res.headers.get('strict-transport-security') ?? '', /max-age/);
    } else {
      assert.match(cookie, /^mq_session=/);
      assert.not.match(cookie, /; Secure/i);
    }
  }
});

// "every admin action …, signup, password change, import and upgrade writes `audit_log` … in the same transaction as
// the change": when the audit row cannot be written, the change does not happen either.
test('audit rows are written in the same transaction as the change: a failing audit write undoes the change', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  const admin = await createUser(t.db, { role: 'admin' });
  const target = await createUser(t.db, { role: 'analyst' });
  const self = await createUser(t.db, { role: 'manager' });
  const adminCookie = await sessionCookie(t.db, admin.id);
  const selfCookie = await loginAs(app, self.email, self.password);
  const users = async () => t.db.query(`SELECT id, email, role, status, display_name, password_hash FROM users ORDER BY id`);
  const before = await users();
  const audits = async () => (await t.db.one<{ n: number }>('SELECT count(*)::int AS n FROM audit_log'))!.n;
  const auditsBefore = await audits();
  await t.db.query(`CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'audit log unavailable (test)'; END $$;
    CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();`);
  try {
    const attempts: [string, () => Promise<Response>][] = [
      ['create', () => authedRequest(app, adminCookie, '/admin/users', { method: 'POST', body: { email: 'audited@example.com', display_name: 'Audited', role: 'analyst' } })],
      ['role change', () => authedRequest(app, adminCookie, `/admin/users/${target.id}`, { method: 'POST', body: { display_name: 'Renamed', role: 'manager', status: 'active' } })],
      ['disable', () => authedRequest(app, adminCookie, `/admin/users/${target.id}/disable`, { method: 'POST', body: {} })],
      ['password reset', () => authedRequest(app, adminCookie, `/admin/users/${target.id}/reset-password`, { method: 'POST', body: {} })],
      ['password change', () => authedRequest(app, selfCookie, '/account/password', { method: 'POST',
        body: { current_password: self.password, new_password: 'a brand new password', confirm_password: 'a brand new password' } })],
      ['signup', async () => app.request('/signup', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ display_name: 'New', email: 'new-audited@example.com', password: 'long enough pw 1', confirm_password: 'long enough pw 1' }).toString() })],
    ];
    for (const [what, p] of attempts) {
      const res = await p();
      assert.ok(res.status >= 500, `${what}: ${res.status} (the change must fail with its audit row)`);
      await res.arrayBuffer();
      assert.equal(await users(), before, `${what}: users unchanged`);
    }
  } finally {
    await t.db.query('DROP TRIGGER test_refuse_audit ON audit_log; DROP FUNCTION test_refuse_audit()');
  }
  assert.is(await audits(), auditsBefore);
  // and with the audit log back, the same change goes through with its row
  const ok = await authedRequest(app, adminCookie, `/admin/users/${target.id}/disable`, { method: 'POST', body: {} });
  assert.is(ok.status, 303);
  assert.is((await t.db.one<{ action: string }>(sql`SELECT action FROM audit_log ORDER BY id DESC LIMIT 1`))!.action, 'user.disable');
  assert.is(await audits(), auditsBefore + 1);
});

test.run();
