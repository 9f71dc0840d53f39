// Sign-in, sign-out, sessions (rotation, idle and absolute timeouts with a movable clock), cookies, CSRF.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { defaultConfig } from '../server/config.ts';
import { createHash } from 'node:crypto';
import { useDatabase } from './helpers/db.ts';
import { createUser, loginAs, authedRequest, sessionCookieFrom, testOutbox, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { hash as argon2hash } from '@node-rs/argon2';

const t = useDatabase(test);
let clock = new Date('2026-03-02T09:00:00Z');
const outbox = testOutbox();
test.after(() => outbox.remove());
const app = () => createApp({ db: t.db, now: () => clock, log: () => {}, config: defaultConfig({ outboxDir: outbox.dir }) });
const form = (body: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(body).toString(),
});
const minutes = (n: number) => { clock = new Date(clock.getTime() + n * 60_000); };

test('POST /login: session cookie (HttpOnly, SameSite=Lax, no Secure on plain http), 303 to a safe next', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const res = await app().request('/login', form({ email: u.email.toUpperCase(), password: u.password, next: '/reports?x=1' }));
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/reports?x=1');
  const set = res.headers.getSetCookie().find((l) => l.startsWith('mq_session='))!;
  assert.ok(set, 'sets the session cookie');
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Lax/);
  assert.match(set, /Path=\//);
  assert.not.match(set, /Secure/);
  const token = /^mq_session=([^;]+)/.exec(set)![1];
  assert.ok(Buffer.from(token, 'base64url').length >= 16, '≥ 128 random bits');
  const row = await t.db.one(sql`SELECT user_id FROM sessions WHERE id_hash = ${createHash('sha256').update(token).digest()}`);
  assert.is(row?.user_id, u.id, 'stored as SHA-256 of the cookie value');
  for (const bad of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
    const r = await app().request('/login', form({ email: u.email, password: u.password, next: bad }));
    assert.is(r.headers.get('location'), '/', `next=${bad} is not followed`);
  }
});

test('secureCookies: __Host- prefix and Secure', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  const secure = createApp({ db: t.db, now: () => clock, log: () => {}, config: defaultConfig({ secureCookies: true }) });
  const res = await secure.request('/login', form({ email: u.email, password: u.password }));
  assert.is(res.status, 303);
  const set = res.headers.getSetCookie().find((l) => l.startsWith('__Host-mq_session='))!;
  assert.ok(set);
  assert.match(set, /Secure/);
  assert.match(set, /HttpOnly/);
  const cookie = sessionCookieFrom(res);
  const me = await authedRequest(secure, cookie, '/account');
  assert.is(me.status, 200);
});

test('wrong password and unknown email give the same answer; the form keeps the email', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const wrong = await app().request('/login', form({ email: u.email, password: 'not-the-password' }));
  const unknown = await app().request('/login', form({ email: 'nobody@test.example', password: 'not-the-password' }));
  assert.is(wrong.status, 401);
  assert.is(unknown.status, 401);
  const a = await wrong.text(), b = await unknown.text();
  assert.match(a, /do not match/);
  assert.match(b, /do not match/);
  assert.match(a, new RegExp(`value="${u.email}"`));
  assert.is(sessionCookieFrom(wrong), '');
});

test('login validation: messages beside the fields', async () => {
  const res = await app().request('/login', form({ email: 'not-an-email', password: '' }));
  assert.is(res.status, 400);
  const body = await res.text();
  assert.match(body, /id="f-email-error">Enter an email address like/);
  assert.match(body, /id="f-password-error">Enter your password/);
  assert.match(body, /value="not-an-email"/);
});

test('logout ends the session; the old cookie no longer works', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const cookie = await loginAs(app(), u.email, u.password);
  assert.is((await authedRequest(app(), cookie, '/account')).status, 200);
  const out = await authedRequest(app(), cookie, '/logout', { method: 'POST' });
  assert.is(out.status, 303);
  assert.ok(out.headers.getSetCookie().some((l) => /^mq_session=;/.test(l) && /Max-Age=0/.test(l)), 'cookie cleared');
  const after = await authedRequest(app(), cookie, '/account');
  assert.is(after.status, 303);
  assert.match(after.headers.get('location')!, /^\/login\?next=%2Faccount/);
});

test('session id rotates on login: a planted/previous session is ended', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const first = await loginAs(app(), u.email, u.password);
  const res = await authedRequest(app(), first, '/login', { body: { email: u.email, password: u.password } , method: 'POST' });
  const second = sessionCookieFrom(res);
  assert.ok(second && second !== first, 'a new id');
  assert.is((await authedRequest(app(), first, '/account')).status, 303, 'the old id is dead');
  assert.is((await authedRequest(app(), second, '/account')).status, 200);
});

test('idle timeout (30 min) and absolute timeout (12 h) on the injected clock', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const cookie = await loginAs(app(), u.email, u.password);
  minutes(29);
  assert.is((await authedRequest(app(), cookie, '/account')).status, 200, 'active at 29 min');
  minutes(29);
  assert.is((await authedRequest(app(), cookie, '/account')).status, 200, 'activity slides the idle window');
  minutes(31);
  const idle = await authedRequest(app(), cookie, '/account');
  assert.is(idle.status, 303, 'idle > 30 min: signed out');
  assert.ok(idle.headers.getSetCookie().some((l) => /^mq_session=;/.test(l)), 'and the cookie is cleared');

  const c2 = await loginAs(app(), u.email, u.password);
  for (let i = 0; i < 28; i++) { minutes(25); assert.is((await authedRequest(app(), c2, '/account')).status, 200, `step ${i}`); }
  // 28 × 25 min = 11 h 40 min; the next step crosses 12 h since sign-in although the session was never idle.
  minutes(25);
  assert.is((await authedRequest(app(), c2, '/account')).status, 303, 'absolute timeout');
  assert.is((await t.db.query(sql`SELECT 1 FROM sessions WHERE user_id = ${u.id}`)).length, 0, 'expired sessions are deleted');
});

test('cross-origin POST is refused (forms, body-less, JSON with a foreign Origin); same origin passes', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const evil = await app().request('/login', form({ email: u.email, password: u.password }, { Origin: 'https://evil.example' }));
  assert.is(evil.status, 403);
  assert.is(sessionCookieFrom(evil), '');
  const noOrigin = await app().request('/login', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: u.email, password: u.password }).toString() });
  assert.is(noOrigin.status, 403, 'a form post without Origin is refused');
  const fetchSite = await app().request('/login', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Sec-Fetch-Site': 'same-origin' },
    body: new URLSearchParams({ email: u.email, password: u.password }).toString() });
  assert.is(fetchSite.status, 303, 'Sec-Fetch-Site: same-origin is accepted without Origin');
  const cookie = await loginAs(app(), u.email, u.password);
  const bodyless = await app().request('/logout', { method: 'POST', headers: { Cookie: cookie, Origin: 'https://evil.example' } });
  assert.is(bodyless.status, 403);
  assert.is((await authedRequest(app(), cookie, '/account')).status, 200, 'the forged logout did nothing');
  const json = await app().request('/api/anything', { method: 'POST', headers: { Cookie: cookie, Origin: 'https://evil.example', 'Content-Type': 'application/json' }, body: '{}' });
  assert.is(json.status, 403);
  const textPlain = await app().request('/api/anything', { method: 'POST', headers: { Cookie: cookie, Origin: TEST_ORIGIN, 'Content-Type': 'text/plain' }, body: '{}' });
  assert.is(textPlain.status, 415, 'JSON routes refuse other content types');
  const formApi = await app().request('/api/anything', { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
  assert.is(formApi.status, 415);
  assert.match((await formApi.json()).error.message, /application\/json/);
});

test('signup: validation beside the fields, a confirmation link by mail, then a signed-in subscriber, audited', async () => {
  const bad = await app().request('/signup', form({ display_name: '', email: 'nope', password: 'short', confirm_password: 'short' }));
  assert.is(bad.status, 400);
  const body = await bad.text();
  assert.match(body, /id="f-display_name-error">Enter a name</);
  assert.match(body, /id="f-email-error">Enter an email address like/);
  assert.match(body, /id="f-password-error">Use at least 10 characters</);
  assert.match(body, /value="nope"/);
  assert.not.match(body, /value="short"/, 'passwords are never echoed');
  const mismatch = await app().request('/signup', form({ display_name: 'Viewer', email: 'viewer@test.example', password: 'long enough pw 1', confirm_password: 'long enough pw 2' }));
  assert.match(await mismatch.text(), /id="f-confirm_password-error">The two passwords differ</);

  const sent = await app().request('/signup', form({ display_name: 'Viewer', email: 'viewer@test.example', password: 'long enough pw 1', confirm_password: 'long enough pw 1', next: '/account' }));
  assert.is(sent.status, 200);
  assert.match(await sent.text(), /Check your email/);
  const token = /token=([\w-]+)/.exec(outbox.confirmPath('viewer@test.example'))![1];
  const ok = await app().request('/signup/confirm', form({ token }));
  assert.is(ok.status, 303);
  assert.is(ok.headers.get('location'), '/account');
  const cookie = sessionCookieFrom(ok);
  const page = await authedRequest(app(), cookie, '/account');
  assert.is(page.status, 200);
  assert.match(await page.text(), /viewer@test\.example/);
  const u = (await t.db.one(sql`SELECT id, role, password_hash FROM users WHERE email = 'viewer@test.example'`))!;
  assert.is(u.role, 'subscriber');
  assert.match(u.password_hash, /^\$argon2id\$/);
  const audit = (await t.db.one(sql`SELECT actor_id, action FROM audit_log WHERE target_id = ${String(u.id)}`))!;
  assert.equal(audit, { actor_id: u.id, action: 'user.signup' });
  const dup = await app().request('/signup', form({ display_name: 'Again', email: 'Viewer@Test.example', password: 'long enough pw 1', confirm_password: 'long enough pw 1' }));
  assert.is(dup.status, 200, 'a taken address answers like a new one (the owner gets a notice by mail)');
  assert.match(await dup.text(), /Check your email/);
  assert.match(outbox.mailTo('Viewer@Test.example').at(-1)!, /already has one/);
  const role = await app().request('/signup', form({ display_name: 'Sneaky', email: 'sneaky@test.example', password: 'long enough pw 1', confirm_password: 'long enough pw 1', role: 'admin' }));
  assert.is(role.status, 200);
  assert.is((await app().request('/signup/confirm', form({ token: /token=([\w-]+)/.exec(outbox.confirmPath('sneaky@test.example'))![1] }))).status, 303);
  assert.is((await t.db.one(sql`SELECT role FROM users WHERE email = 'sneaky@test.example'`))!.role, 'subscriber', 'signup cannot choose a role');
});

test('profile: change the display name (validated, audited)', async () => {
  const u = await createUser(t.db, { role: 'subscriber', name: 'Old Name' });
  const cookie = await loginAs(app(), u.email, u.password);
  const empty = await authedRequest(app(), cookie, '/account', { method: 'POST', body: { display_name: '   ' } });
  assert.is(empty.status, 400);
  assert.match(await empty.text(), /id="f-display_name-error">Enter a display name</);
  const ok = await authedRequest(app(), cookie, '/account', { method: 'POST', body: { display_name: 'New Name' } });
  assert.is(ok.status, 303);
  const page = await (await authedRequest(app(), cookie, ok.headers.get('location')!)).text();
  assert.match(page, /Your profile is saved/);
  assert.match(page, /value="New Name"/);
  const audit = (await t.db.one(sql`SELECT action, before, after FROM audit_log WHERE target_id = ${String(u.id)} AND action = 'account.update'`))!;
  assert.equal([audit.before, audit.after], [{ display_name: 'Old Name' }, { display_name: 'New Name' }]);
});

test('change password: wrong current password refused; success ends other sessions and rotates this one', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const here = await loginAs(app(), u.email, u.password);
  const elsewhere = await loginAs(app(), u.email, u.password);
  const wrong = await authedRequest(app(), here, '/account/password', { method: 'POST', body: { current_password: 'nope nope nope', new_password: 'brand new pass 1', confirm_password: 'brand new pass 1' } });
  assert.is(wrong.status, 400);
  assert.match(await wrong.text(), /id="f-current_password-error">That is not your current password/);
  const ok = await authedRequest(app(), here, '/account/password', { method: 'POST', body: { current_password: u.password, new_password: 'brand new pass 1', confirm_password: 'brand new pass 1' } });
  assert.is(ok.status, 303);
  const rotated = sessionCookieFrom(ok);
  assert.ok(rotated && rotated !== here);
  assert.is((await authedRequest(app(), elsewhere, '/account')).status, 303, 'other sessions ended');
  assert.is((await authedRequest(app(), here, '/account')).status, 303, 'the old id of this session ended too');
  assert.is((await authedRequest(app(), rotated, '/account')).status, 200);
  await loginAs(app(), u.email, 'brand new pass 1');
});

test('sign out everywhere ends every session of the user, and only theirs', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const other = await createUser(t.db, { role: 'manager' });
  const a = await loginAs(app(), u.email, u.password), b = await loginAs(app(), u.email, u.password);
  const o = await loginAs(app(), other.email, other.password);
  const res = await authedRequest(app(), a, '/account/sign-out-everywhere', { method: 'POST' });
  assert.is(res.status, 303);
  assert.is((await authedRequest(app(), a, '/account')).status, 303);
  assert.is((await authedRequest(app(), b, '/account')).status, 303);
  assert.is((await authedRequest(app(), o, '/account')).status, 200);
});

test('a forced password change blocks everything else (pages redirect, other requests 403)', async () => {
  const u = await createUser(t.db, { role: 'analyst', mustChangePassword: true });
  const cookie = await loginAs(app(), u.email, u.password);
  const page = await authedRequest(app(), cookie, '/admin/users');
  assert.is(page.status, 303);
  assert.is(page.headers.get('location'), '/account/password?next=%2Fadmin%2Fusers');
  assert.is((await authedRequest(app(), cookie, '/account', { method: 'POST', body: { display_name: 'x' } })).status, 403);
  assert.is((await authedRequest(app(), cookie, '/account/password')).status, 200);
  // Once changed, the person goes on to their work (home sends staff to the dashboards), not back to the account.
  const changed = await authedRequest(app(), cookie, '/account/password', { method: 'POST',
    body: { current_password: u.password, new_password: 'a brand new passphrase 42', confirm_password: 'a brand new passphrase 42' } });
  assert.is(changed.status, 303);
  assert.is(changed.headers.get('location'), '/');
  const fresh = changed.headers.get('set-cookie')!.split(';')[0];
  const home = await authedRequest(app(), fresh, '/');
  assert.is(home.headers.get('location'), '/dashboards');
  assert.is((await authedRequest(app(), fresh, '/logout', { method: 'POST' })).status, 303);
});

test('an argon2 hash weaker than the current parameters is upgraded at sign-in', async () => {
  const weak = await argon2hash('upgrade me please', { algorithm: 2, memoryCost: 4096, timeCost: 1, parallelism: 1 } as any);
  const u = await createUser(t.db, { role: 'subscriber' });
  await t.db.query(sql`UPDATE users SET password_hash = ${weak} WHERE id = ${u.id}`);
  await loginAs(app(), u.email, 'upgrade me please');
  const now = (await t.db.one(sql`SELECT password_hash FROM users WHERE id = ${u.id}`))!.password_hash;
  assert.match(now, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
});

test('client IP: the socket address; X-Forwarded-For only with MARQUEE_TRUST_PROXY=1', async () => {
  const { clientIp } = await import('../server/auth/client-ip.ts');
  const ctx = (headers: Record<string, string>, remoteAddress?: string, trustProxy = false) => ({
    req: { header: (n: string) => headers[n.toLowerCase()] }, env: remoteAddress ? { incoming: { socket: { remoteAddress } } } : undefined,
    get: (k: string) => (k === 'deps' ? { config: defaultConfig({ trustProxy }) } : undefined),
  }) as any;
  assert.is(clientIp(ctx({ 'x-forwarded-for': '1.2.3.4' }, '::ffff:10.0.0.9')), '10.0.0.9', 'spoofable header ignored by default');
  assert.is(clientIp(ctx({})), null, 'no socket (in-process request): unknown');
  assert.is(clientIp(ctx({ 'x-forwarded-for': '6.6.6.6, 203.0.113.9' }, '10.0.0.1', true)), '203.0.113.9', 'the entry our proxy appended');
  assert.is(clientIp(ctx({ 'x-forwarded-for': 'garbage' }, '10.0.0.1', true)), '10.0.0.1');
});

test.run();
