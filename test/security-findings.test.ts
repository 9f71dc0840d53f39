// Findings 4–9 of the security review (README "Input limits"): each test here failed before its fix and quotes the
// finding's repro request.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { passwordProblem } from '../server/auth/password.ts';
import { ensureFirstAdmin } from '../server/first-start.ts';
import { runCommand } from '../server/auth/users-cli.ts';
import { PublicOrigins, listenOrigins } from '../server/auth/origins.ts';
import { defaultConfig, loadConfig } from '../server/config.ts';

const publicOrigins = (env: Record<string, string>) => loadConfig(env).publicUrls;
import { listen } from '../server/serve.ts';
import http from 'node:http';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const t = useDatabase(test);
const outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-outbox-'));
test.after(() => fs.rmSync(outbox, { recursive: true, force: true }));
let clock = Date.now();
const app = () => createApp({ db: t.db, log: () => {}, config: defaultConfig({ outboxDir: outbox }), now: () => new Date(clock) });
/** The messages in the outbox to an address, oldest first. */
const mailTo = (email: string) => fs.readdirSync(outbox).filter((f) => f.endsWith('.eml')).sort()
  .map((f) => ({ file: path.join(outbox, f), text: fs.readFileSync(path.join(outbox, f), 'utf8') }))
  .filter((m) => m.text.includes(`To: <${email}>`));
const formPost = (body: string, headers: Record<string, string> = {}) => ({
  method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body,
});

// ── 4. out-of-range dates are a 400, never a 500 ───────────────────────────────────────────────────────────────────
test('4: GET /admin/audit?from=0000-01-01 (and to=) is a 400 naming the field, not a 500', async () => {
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  for (const q of ['from=0000-01-01', 'to=0000-01-01', 'from=0000-02-29&to=2026-01-01', 'to=9999-12-31&from=0001-01-01']) {
    const r = await authedRequest(app(), cookie, `/admin/audit?${q}`);
    const body = await r.text();
    assert.is(r.status, 400, q);
    assert.match(body, /aria-invalid="true"/, q);
  }
  const ok = await authedRequest(app(), cookie, '/admin/audit?from=2026-01-01&to=2026-12-31');
  assert.is(ok.status, 200);
});

test('4: other date and month inputs: report parameters and dashboard months out of range are a 400', async () => {
  const analyst = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, analyst.id);
  for (const url of ['/dashboards/executive_overview?from=0000-01&to=2026-01', '/dashboards/executive_overview?to=0000-01',
    '/dashboards/revenue_payments?from=2026-01&to=9999-12']) {
    const r = await authedRequest(app(), cookie, url);
    assert.is(r.status, 400, url);
    assert.match(await r.text(), /month/, url);
  }
  // report parameters already refused these (years 1900-2999): kept here so every date input stays covered
  for (const url of ['/reports/arpa?from=0000-01', '/api/reports/arpa?to=0000-12', '/api/reports/kpi_arr?month=0000-01',
    '/reports/kpi_arr?month=10000-01', '/api/reports/arpa?from=2026-00']) {
    const r = await authedRequest(app(), cookie, url);
    assert.is(r.status, 400, url);
  }
});

// ── 9. a repeated form key is a 400 ────────────────────────────────────────────────────────────────────────────────
test('9: role=subscriber&role=admin is a 400 and creates no admin', async () => {
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  const r = await authedRequest(app(), cookie, '/admin/users', { method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'email=dup-role%40test.example&display_name=Dup&role=subscriber&role=admin' });
  assert.is(r.status, 400);
  assert.match(await r.text(), /role was sent more than once/);
  assert.not.ok(await t.db.one(sql`SELECT 1 FROM users WHERE email = 'dup-role@test.example'`));
  // multipart too, and on a public form
  const fd = new FormData(); fd.append('email', 'a@test.example'); fd.append('email', 'b@test.example'); fd.append('password', 'x');
  const login = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN }, body: fd });
  assert.is(login.status, 400);
  assert.match(await login.text(), /email was sent more than once/);
  // a single value still works
  const one = await authedRequest(app(), cookie, '/admin/users', { method: 'POST', body: { email: 'one-role@test.example', display_name: 'One', role: 'analyst' } });
  assert.is(one.status, 200);
});

// ── 8. client request ids are kept beside ours, never instead of it ────────────────────────────────────────────────
test('8: a client X-Request-Id is not our id: ours is generated, a well-formed client id is stored beside it', async () => {
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  const sub = await createUser(t.db, { role: 'subscriber' });
  const r = await authedRequest(app(), cookie, `/admin/users/${sub.id}/disable`, { method: 'POST', headers: { 'X-Request-Id': 'client-chosen-id' } });
  assert.is(r.status, 303);
  const ours = r.headers.get('x-request-id')!;
  assert.is.not(ours, 'client-chosen-id');
  assert.match(ours, /^[0-9a-f-]{36}$/);
  const row = await t.db.one<{ request_id: string; client_request_id: string | null }>(sql`SELECT request_id, client_request_id
    FROM audit_log WHERE action = 'user.disable' AND target_id = ${String(sub.id)}`);
  assert.is(row!.request_id, ours);
  assert.is(row!.client_request_id, 'client-chosen-id');
  // a malformed one is dropped
  const bad = await authedRequest(app(), cookie, `/admin/users/${sub.id}/enable`, { method: 'POST', headers: { 'X-Request-Id': 'has spaces; and <tags>' } });
  const row2 = await t.db.one<{ request_id: string; client_request_id: string | null }>(sql`SELECT request_id, client_request_id
    FROM audit_log WHERE action = 'user.enable' AND target_id = ${String(sub.id)}`);
  assert.is(row2!.request_id, bad.headers.get('x-request-id'));
  assert.is(row2!.client_request_id, null);
  // two requests sending the same id still get distinct ids of ours
  const a = await app().request('/healthz', { headers: { 'X-Request-Id': 'same' } });
  const b = await app().request('/healthz', { headers: { 'X-Request-Id': 'same' } });
  assert.is.not(a.headers.get('x-request-id'), b.headers.get('x-request-id'));
});

test('8: a log line quotes our id and the client id beside it', async () => {
  const lines: string[] = [];
  const down = { one: async () => { throw new Error('connection refused'); } } as unknown as typeof t.db;
  const a = createApp({ db: down, log: (l) => lines.push(l) });
  const r = await a.request('/readyz', { headers: { 'X-Request-Id': 'client-42' } });
  assert.is(r.status, 503);
  const ours = r.headers.get('x-request-id')!;
  assert.ok(lines.some((l) => l.includes(`${ours} (client id client-42)`)), lines.join('\n'));
});

// ── 6. common passwords are refused everywhere a password is set ───────────────────────────────────────────────────
const COMMON = ['password12', '1234567890', 'qwertyuiop'];

test('6: password12, 1234567890 and qwertyuiop are refused (any case); an uncommon passphrase passes', () => {
  for (const p of [...COMMON, 'PASSWORD12', 'QwertyUiop']) assert.match(passwordProblem(p) ?? '', /common/, p);
  assert.is(passwordProblem('correct horse battery'), undefined);
});

test('6: sign-up, /account/password, the CLI and MARQUEE_ADMIN_PASSWORD refuse a common password', async () => {
  for (const p of COMMON) {
    const s = await app().request('/signup', formPost(new URLSearchParams({ display_name: 'C', email: `c-${p}@test.example`, password: p, confirm_password: p }).toString()));
    assert.is(s.status, 400, p);
    assert.match(await s.text(), /common/, p);
  }
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, u.id);
  const ch = await authedRequest(app(), cookie, '/account/password', { method: 'POST', body: { current_password: u.password, new_password: 'qwertyuiop', confirm_password: 'qwertyuiop' } });
  assert.is(ch.status, 400);
  assert.match(await ch.text(), /common/);
  const lines: string[] = [];
  const cli = await runCommand(t.db, ['create', '--email', 'cli-common@test.example', '--password', '1234567890', '--role', 'analyst'], (l) => lines.push(l))
    .then(() => undefined, (e: Error) => e);
  assert.ok(cli, 'the CLI refuses it');
  assert.match(cli!.message, /common/);
  const reset = await runCommand(t.db, ['reset-password', '--email', u.email, '--password', 'password12'], () => {}).then(() => undefined, (e: Error) => e);
  assert.match(reset?.message ?? '', /common/);
  await t.db.query(sql`UPDATE users SET role = 'analyst' WHERE role = 'admin'`);
  const first = await ensureFirstAdmin(t.db, defaultConfig({ adminPassword: 'password12' })).then(() => undefined, (e: Error) => e);
  assert.match(first?.message ?? '', /MARQUEE_ADMIN_PASSWORD.*common/);
  assert.not.ok(await t.db.one(sql`SELECT 1 FROM users WHERE role = 'admin'`));
});

// ── 5. Host header trust (DNS rebinding) ───────────────────────────────────────────────────────────────────────────
const signupBody = (email: string) => new URLSearchParams({ display_name: 'Rebound', email, password: 'rebinding pass 1', confirm_password: 'rebinding pass 1' }).toString();

test('5: Host: evil.com:3100 + Origin: http://evil.com:3100 on POST /signup is refused (421) and creates nothing', async () => {
  const r = await app().request('/signup', formPost(signupBody('rebind@test.example'), { Host: 'evil.com:3100', Origin: 'http://evil.com:3100' }));
  assert.is(r.status, 421);
  assert.match(await r.text(), /evil\.com:3100/);
  const r2 = await app().request('http://evil.com:3100/signup', formPost(signupBody('rebind2@test.example'), { Origin: 'http://evil.com:3100' }));
  assert.is(r2.status, 421);
  assert.not.ok(await t.db.one(sql`SELECT 1 FROM users WHERE email LIKE 'rebind%'`));
  // the probes answer any Host (orchestrators probe by pod IP)
  assert.is((await app().request('/healthz', { headers: { Host: '10.1.2.3:8080' } })).status, 200);
});

test('5: default public origins for 127.0.0.1:3000 are 127.0.0.1:3000 and localhost:3000 only', () => {
  const o = new PublicOrigins(listenOrigins('127.0.0.1', 3000));
  for (const h of ['127.0.0.1:3000', 'localhost:3000', 'LOCALHOST:3000']) assert.ok(o.allowsHost(h), h);
  for (const h of ['evil.com:3000', 'localhost:3001', 'localhost', '127.0.0.1', 'evil.com']) assert.not.ok(o.allowsHost(h), h);
  assert.ok(o.isOwnOrigin('http://localhost:3000', 'localhost:3000', false));
  assert.not.ok(o.isOwnOrigin('http://evil.com:3000', 'localhost:3000', false));
});

test('5: MARQUEE_PUBLIC_URL: origins only, clear errors; an https origin behind a proxy', async () => {
  assert.equal(publicOrigins({ MARQUEE_PUBLIC_URL: 'https://marquee.example.com, http://10.0.0.5:3000' }), ['https://marquee.example.com', 'http://10.0.0.5:3000']);
  assert.is(publicOrigins({}), undefined);
  assert.throws(() => publicOrigins({ MARQUEE_PUBLIC_URL: 'https://marquee.example.com/app' }), /MARQUEE_PUBLIC_URL: .*origin only/);
  assert.throws(() => publicOrigins({ MARQUEE_PUBLIC_URL: 'marquee.example.com' }), /MARQUEE_PUBLIC_URL: .*not a URL/);
  const a = createApp({ db: t.db, log: () => {}, config: defaultConfig({ secureCookies: true }), publicOrigins: new PublicOrigins(['https://marquee.example.com']) });
  const ok = await a.request('/theme', formPost('theme=light', { Host: 'marquee.example.com', Origin: 'https://marquee.example.com' }));
  assert.is(ok.status, 303);
  const foreign = await a.request('/theme', formPost('theme=light', { Host: 'marquee.example.com', Origin: 'https://evil.example' }));
  assert.is(foreign.status, 403);
  assert.is((await a.request('/login', { headers: { Host: 'localhost' } })).status, 421, 'not a configured name');
});

test('5: a real server on port 0: the allowed set is filled after listen; a foreign Host gets 421', async () => {
  const origins = new PublicOrigins([]);
  const a = createApp({ db: t.db, log: () => {}, publicOrigins: origins });
  const { server } = await listen(a.fetch, 0, '127.0.0.1');
  const port = (server.address() as { port: number }).port;
  origins.set(listenOrigins('127.0.0.1', port));
  const get = (host: string, path = '/login') => new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { Host: host } }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
  });
  try {
    assert.is(await get(`127.0.0.1:${port}`), 200);
    assert.is(await get(`localhost:${port}`), 200);
    assert.is(await get(`evil.com:${port}`), 421);
    assert.is(await get('10.9.8.7', '/healthz'), 200);
  } finally {
    await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
  }
});

// ── 7. sign-up does not tell who has an account ─────────────────────────────────────────────────────────────────────
const signupForm = (email: string) => formPost(new URLSearchParams({ display_name: 'Same Name', email, password: 'same long pass 7', confirm_password: 'same long pass 7' }).toString());

test('7: sign-up answers the same for a known and an unknown address; only the owner learns which, by mail', async () => {
  const known = await createUser(t.db, { role: 'subscriber', email: 'known-7@test.example' });
  const a = await app().request('/signup', signupForm(known.email));
  const b = await app().request('/signup', signupForm('unknown-7@test.example'));
  const [ta, tb] = [await a.text(), await b.text()];
  assert.is(a.status, b.status);
  assert.is(a.status, 200);
  assert.not.match(ta, /already exists/);
  assert.is(ta.replaceAll(known.email, 'X'), tb.replaceAll('unknown-7@test.example', 'X'), 'the same page');
  assert.match(ta, /Check your email/);
  const names = (r: Response) => [...r.headers.keys()].filter((k) => k !== 'x-request-id').sort().join(',');
  assert.is(names(a), names(b), 'the same headers');
  assert.is(a.headers.getSetCookie().length + b.headers.getSetCookie().length, 0, 'no session yet in either case');
  // the owner of the known address gets a notice, without any link that creates something
  const [notice] = mailTo(known.email);
  assert.match(notice.text, /already has one/);
  assert.not.match(notice.text, /token=/);
  assert.is(fs.statSync(notice.file).mode & 0o777, 0o600);
  assert.is((await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM users WHERE lower(email) = ${known.email}`))!.n, 1);
  const audit = await t.db.query<{ action: string }>(sql`SELECT action FROM audit_log WHERE action LIKE 'user.signup%' ORDER BY id`);
  assert.equal(audit.map((r) => r.action), ['user.signup_refused', 'user.signup_requested']);
});

test('7: the confirmation link creates the subscriber and signs it in, once, within 24 hours', async () => {
  const email = 'confirm-7@test.example';
  const r = await app().request('/signup', formPost(new URLSearchParams({ display_name: 'Con Firm', email, password: 'confirm long 77', confirm_password: 'confirm long 77', next: '/account', role: 'admin' }).toString()));
  assert.is(r.status, 200);
  assert.not.ok(await t.db.one(sql`SELECT 1 FROM users WHERE email = ${email}`), 'no account before the link is used');
  const [mail] = mailTo(email);
  const link = /(http:\/\/localhost\/signup\/confirm\?token=[\w-]{43})/.exec(mail.text)![1];
  const token = new URL(link).searchParams.get('token')!;
  assert.ok(await t.db.one(sql`SELECT 1 FROM signup_requests WHERE token_hash = ${createHash('sha256').update(token).digest()}`), 'stored hashed');
  assert.not.ok(await t.db.one(sql`SELECT 1 FROM signup_requests WHERE strpos(email || display_name || password_hash || coalesce(next_path, ''), ${token}) > 0`));
  const show = await app().request(link.replace('http://localhost', ''));
  assert.is(show.status, 200);
  assert.match(await show.text(), /confirm-7@test\.example/);
  assert.ok(await t.db.one(sql`SELECT 1 FROM signup_requests WHERE email = ${email}`), 'GET does not use the link');
  const done = await app().request('/signup/confirm', formPost(`token=${token}`));
  assert.is(done.status, 303);
  assert.is(done.headers.get('location'), '/account');
  const cookie = done.headers.getSetCookie().find((l) => l.startsWith('mq_session='))!.split(';')[0];
  const acc = await authedRequest(app(), cookie, '/account');
  assert.is(acc.status, 200);
  const u = (await t.db.one<{ id: number; role: string; password_hash: string }>(sql`SELECT id, role, password_hash FROM users WHERE email = ${email}`))!;
  assert.is(u.role, 'subscriber', 'a sign-up cannot choose its role');
  assert.match(u.password_hash, /^\$argon2id\$/);
  assert.ok(await t.db.one(sql`SELECT 1 FROM audit_log WHERE action = 'user.signup' AND actor_id = ${u.id}`));
  assert.is((await app().request('/signup/confirm', formPost(`token=${token}`))).status, 400, 'one time only');
  // an expired link does nothing
  await app().request('/signup', signupForm('late-7@test.example'));
  const late = /token=([\w-]{43})/.exec(mailTo('late-7@test.example')[0].text)![1];
  clock += 25 * 3_600_000;
  try {
    assert.is((await app().request(`/signup/confirm?token=${late}`)).status, 400);
    assert.is((await app().request('/signup/confirm', formPost(`token=${late}`))).status, 400);
    assert.not.ok(await t.db.one(sql`SELECT 1 FROM users WHERE email = 'late-7@test.example'`));
  } finally { clock -= 25 * 3_600_000; }
});

test.run();
