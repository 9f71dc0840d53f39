// Sign-in, sign-out, sessions (rotation, idle and absolute timeouts with a movable clock), cookies, CSRF.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { createHash } from 'node:crypto';
import { useDatabase } from './helpers/db.ts';
import { createUser, loginAs, authedRequest, sessionCookieFrom, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';

const t = useDatabase(test);
let clock = new Date('2026-03-02T09:00:00Z');
const app = () => createApp({ db: t.db, now: () => clock, log: () => {} });
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
  const secure = createApp({ db: t.db, now: () => clock, log: () => {}, secureCookies: true });
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

test.run();
