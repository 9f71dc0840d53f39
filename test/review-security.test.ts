// Review findings: each test here failed before its fix (open redirects, error handling, role checks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { safeNext } from '../server/auth/forms.ts';
import path from 'node:path';
import { loadCatalog } from '../server/reports/engine.ts';
import { defaultConfig } from '../server/config.ts';

const MAX_CSV_STREAMS = defaultConfig().csvStreams;

const t = useDatabase(test);
const app = () => createApp({ db: t.db, log: () => {} });
const form = (body: Record<string, string>) => ({
  method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(body).toString(),
});

// Dot segments normalize away: "/.//evil.example" is the protocol-relative "//evil.example" once resolved.
const DOT_SEGMENT_ESCAPES = ['/.//evil.example', '/..//evil.example/x', '/a/..//evil.example', '/%2e//evil.example', '/%2E%2E//evil.example'];

test('safeNext: dot segments cannot turn a local path into a protocol-relative URL', () => {
  for (const s of DOT_SEGMENT_ESCAPES) assert.is(safeNext(s), '/', s);
  assert.is(safeNext('/reports/mrr_trend?from=2026-01'), '/reports/mrr_trend?from=2026-01');
});

test('POST /login and POST /theme do not redirect off-site through dot segments in next', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  for (const next of DOT_SEGMENT_ESCAPES) {
    const r = await app().request('/login', form({ email: u.email, password: u.password, next }));
    assert.is(r.status, 303);
    assert.is(r.headers.get('location'), '/', `login next=${next}`);
    const th = await app().request('/theme', form({ theme: 'light', next }));
    assert.is(th.headers.get('location'), '/', `theme next=${next}`);
  }
  const cookie = await sessionCookie(t.db, u.id);
  const g = await authedRequest(app(), cookie, `/login?next=${encodeURIComponent('/.//evil.example')}`);
  assert.is(g.headers.get('location'), '/');
});

// PostgreSQL refuses NUL in text ("invalid byte sequence for encoding UTF8: 0x00"): such input must be a 400, not a 500.
test('a NUL character in a query string or form field is a 400 naming the field, never a 500', async () => {
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  for (const url of ['/admin/users?q=%00', '/reports/mrr_trend?plan=%00', '/api/reports/mrr_trend?plan=a%00b', '/admin/audit?action=%00']) {
    const r = await authedRequest(app(), cookie, url);
    const body = await r.text();
    assert.is(r.status, 400, url);
    assert.not.match(body, /invalid byte sequence/, url);
  }
  const acc = await authedRequest(app(), cookie, '/account', { method: 'POST', body: { display_name: 'a\u0000b' } });
  assert.is(acc.status, 400);
  assert.match(await acc.text(), /display_name/);
  const login = await app().request('/login', form({ email: 'a\u0000@b.example', password: 'whatever-password' }));
  assert.is(login.status, 400);
  const signup = await app().request('/signup', form({ email: 'x@b.example', display_name: 'n\u0000', password: 'a-long-password-1', confirm_password: 'a-long-password-1' }));
  assert.is(signup.status, 400);
});

test('a malformed multipart body is a 400 on every form route, never a 500', async () => {
  const admin = await createUser(t.db, { role: 'admin' });
  const sub = await createUser(t.db, { role: 'subscriber' });
  for (const url of ['/admin/users', `/admin/users/${sub.id}`, '/reports/refresh', '/account', '/account/password', '/theme', '/login', '/signup']) {
    const cookie = await sessionCookie(t.db, admin.id);
    const r = await app().request(url, { method: 'POST', headers: { Cookie: cookie, Origin: TEST_ORIGIN, 'Content-Type': 'multipart/form-data; boundary=zz' }, body: 'garbage' });
    assert.is(r.status, 400, url);
  }
});

// Every form is parsed into memory: without a cap one anonymous POST of any size is read whole.
test('a request body over 1 MiB is refused with 413 before it is parsed, on public and API routes', async () => {
  const big = 'email=a%40b.example&password=' + 'x'.repeat(2 * 1024 * 1024);
  const r = await app().request('/login', form({}), undefined);
  assert.is(r.status, 400, 'an empty form is a 400 (the route works)');
  const huge = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' }, body: big });
  assert.is(huge.status, 413);
  assert.match(await huge.text(), /too large/i);
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  const api = await app().request('/api/marts/refresh', { method: 'POST', headers: { Cookie: cookie, Origin: TEST_ORIGIN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ marts: ['x'.repeat(2 * 1024 * 1024)] }) });
  assert.is(api.status, 413);
  assert.is((await api.json()).error.status, 413);
});

// /readyz is public (load balancers probe it anonymously): the database's error text (hosts, user names) stays in the log.
test('/readyz answers 503 without the database error text, which goes to the log with the request id', async () => {
  const logged: string[] = [];
  const secret = 'password authentication failed for user "marquee_prod" at db-internal-7.example:5432';
  const broken = { ...t.db, one: async () => { throw new Error(secret); }, query: async () => { throw new Error(secret); } };
  const res = await createApp({ db: broken as typeof t.db, log: (l) => logged.push(l) }).request('/readyz');
  assert.is(res.status, 503);
  const body = await res.text();
  assert.not.match(body, /marquee_prod|db-internal/);
  assert.is(JSON.parse(body).status, 'database unavailable');
  assert.ok(logged.some((l) => l.includes(secret) && l.includes(res.headers.get('x-request-id')!)), 'logged with the request id');
});

// `period in PERIODS` also finds Object.prototype's keys: ?period=constructor rendered a page of NaN months.
test('a dashboard period named like an Object.prototype key is a 400', async () => {
  const manager = await createUser(t.db, { role: 'manager' });
  const cookie = await sessionCookie(t.db, manager.id);
  for (const p of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const r = await authedRequest(app(), cookie, `/dashboards/executive_overview?period=${p}`);
    assert.is(r.status, 400, p);
    assert.not.match(await r.text(), /NaN/, p);
  }
  const ok = await authedRequest(app(), cookie, '/dashboards/executive_overview?period=3m');
  assert.is(ok.status, 200);
});

// A stolen session must not become an unlimited password oracle: the current-password check of /account/password
// goes through the sign-in throttle of the account.
test('/account/password: repeated wrong current passwords are throttled like sign-in attempts (429 + Retry-After)', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, u.id);
  const now = new Date();
  const fixed = createApp({ db: t.db, log: () => {}, now: () => now });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await authedRequest(fixed, cookie, '/account/password', { method: 'POST',
      body: { current_password: `wrong-guess-${i}`, new_password: 'a-brand-new-pass-1', confirm_password: 'a-brand-new-pass-1' } });
    statuses.push(r.status);
    if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1);
  }
  assert.equal(statuses.slice(0, 5), [400, 400, 400, 400, 400], 'the first failures are plain form errors');
  assert.ok(statuses.slice(5).every((s) => s === 429), `then throttled: ${statuses.join(',')}`);
  // even the right password waits while throttled; nothing changed
  const right = await authedRequest(fixed, cookie, '/account/password', { method: 'POST',
    body: { current_password: u.password, new_password: 'a-brand-new-pass-1', confirm_password: 'a-brand-new-pass-1' } });
  assert.is(right.status, 429);
  const later = createApp({ db: t.db, log: () => {}, now: () => new Date(now.getTime() + 61_000) });
  const ok = await authedRequest(later, cookie, '/account/password', { method: 'POST',
    body: { current_password: u.password, new_password: 'a-brand-new-pass-1', confirm_password: 'a-brand-new-pass-1' } });
  assert.is(ok.status, 303, 'the right password is accepted once the delay has passed');
});

// A CSV download holds a pooled connection (and its READ ONLY snapshot) until the client has read the last byte: a few
// unread downloads must not take every connection of the pool, which the whole app shares.
test('CSV downloads in flight are capped (503 + Retry-After beyond the cap); a finished or cancelled one frees its slot', async () => {
  const catalog = loadCatalog(path.resolve(import.meta.dirname, 'fixtures/reports/review'));
  const capped = createApp({ db: t.db, catalog, log: () => {} });
  const analyst = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, analyst.id);
  const open: Response[] = [];
  try {
    for (let i = 0; i < MAX_CSV_STREAMS; i++) {
      const r = await authedRequest(capped, cookie, '/api/reports/many_rows.csv');
      assert.is(r.status, 200);
      open.push(r);
    }
    const refused = await authedRequest(capped, cookie, '/api/reports/many_rows.csv');
    open.push(refused);
    assert.is(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.match((await refused.json()).error.message, /CSV downloads/);
    await open.shift()!.body!.cancel();
    open.pop();
    const full = await authedRequest(capped, cookie, '/api/reports/many_rows.csv');
    assert.is(full.status, 200, 'a cancelled download frees its slot');
    assert.is((await full.text()).trim().split('\n').length, 5001, 'read to the end');
    const again = await authedRequest(capped, cookie, '/api/reports/many_rows.csv');
    assert.is(again.status, 200, 'a download read to the end frees its slot');
    open.push(again);
  } finally {
    for (const r of open) await r.body?.cancel().catch(() => {});
  }
});

// Hono answers HEAD by running the GET handler and dropping its body without cancelling it: a CSV cursor opened for a
// HEAD request was never closed, so each HEAD leaked a pooled connection for good.
test('HEAD on a CSV download answers its headers and holds no connection', async () => {
  const catalog = loadCatalog(path.resolve(import.meta.dirname, 'fixtures/reports/review'));
  const app2 = createApp({ db: t.db, catalog, log: () => {} });
  const analyst = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, analyst.id);
  for (let i = 0; i < MAX_CSV_STREAMS + 2; i++) {
    const r = await authedRequest(app2, cookie, '/api/reports/many_rows.csv', { method: 'HEAD' });
    assert.is(r.status, 200, `HEAD ${i}`);
    assert.is(r.headers.get('x-truncated'), 'false');
  }
  // the cursor's transaction ends just after the response is handed over: allow it a moment on a loaded machine,
  // but a connection that stays idle in a transaction (the bug: HEAD never read the body) still fails
  const idleInTx = async () => (await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'`))!.n;
  let busy = await idleInTx();
  for (let i = 0; i < 50 && busy > 0; i++) { await new Promise((r) => setTimeout(r, 100)); busy = await idleInTx(); }
  assert.is(busy, 0, 'no connection left idle in a transaction');
  const get = await authedRequest(app2, cookie, '/api/reports/many_rows.csv');
  assert.is(get.status, 200);
  assert.is((await get.text()).trim().split('\n').length, 5001);
});

test.run();
