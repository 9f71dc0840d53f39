// Sign-in throttling: growing delays per account and per IP, 429 + Retry-After, the 100-per-hour cap, blocked attempts
// not counted, and known devices keeping their owner in while an attacker hammers the account.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, TEST_ORIGIN, sessionCookieFrom, testOutbox } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { THROTTLE, allowedAt } from '../server/auth/throttle.ts';
import { defaultConfig } from '../server/config.ts';

const SIGNUPS_PER_IP_HOUR = defaultConfig().signupsPerIpHour;

const t = useDatabase(test);
let clock = new Date('2026-05-10T08:00:00Z');
const outbox = testOutbox();
test.after(() => outbox.remove());
const app = () => createApp({ db: t.db, now: () => clock, log: () => {}, config: defaultConfig({ outboxDir: outbox.dir }) });
const seconds = (n: number) => { clock = new Date(clock.getTime() + n * 1000); };
const from = (ip: string) => ({ incoming: { socket: { remoteAddress: ip } } });

async function attempt(email: string, password: string, ip = '198.51.100.1', cookie = '') {
  const headers: Record<string, string> = { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' };
  if (cookie) headers.Cookie = cookie;
  return app().request('/login', { method: 'POST', headers, body: new URLSearchParams({ email, password }).toString() }, from(ip));
}

test('the delay schedule: 5 free failures, then 1 s, 2 s, 4 s … capped at 60 s; cap 100 per hour', () => {
  const at = (n: number) => allowedAt(THROTTLE.account, { n, last: new Date(0), capFrom: null });
  assert.equal([4, 5, 6, 7, 8, 10, 11, 12, 50].map(at), [0, 1000, 2000, 4000, 8000, 32000, 60000, 60000, 60000]);
  const capped = allowedAt(THROTTLE.account, { n: 100, last: new Date(0), capFrom: new Date(5000) });
  assert.is(capped, 5000 + 3_600_000);
});

test('per account: growing delays with 429 + Retry-After; blocked attempts are not counted', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  for (let i = 0; i < 5; i++) assert.is((await attempt(u.email, 'wrong password!', `198.51.100.${10 + i}`)).status, 401, `free failure ${i + 1}`);
  const blocked = await attempt(u.email, u.password, '198.51.100.99');
  assert.is(blocked.status, 429, 'even the right password waits: the delay is per account, from any IP');
  assert.is(blocked.headers.get('retry-after'), '1');
  assert.match(await blocked.text(), /Too many failed sign-in attempts. Try again in 1 second/);
  assert.is(sessionCookieFrom(blocked), '');
  for (let i = 0; i < 5; i++) assert.is((await attempt(u.email, 'wrong password!')).status, 429, 'hammering while blocked');
  seconds(1);
  assert.is((await attempt(u.email, 'wrong password!', '198.51.100.20')).status, 401, 'allowed again after 1 s (blocked tries did not count)');
  const next = await attempt(u.email, 'wrong password!', '198.51.100.21');
  assert.is(next.status, 429);
  assert.is(next.headers.get('retry-after'), '2', 'the delay doubles');
  seconds(2);
  assert.is((await attempt(u.email, u.password, '198.51.100.22')).status, 303, 'the real password works once the delay passed');
  const rows = await t.db.query(sql`SELECT succeeded FROM login_attempts WHERE account = ${u.email.toLowerCase()} ORDER BY id`);
  assert.equal(rows.map((r) => r.succeeded), [false, false, false, false, false, false, true], 'only real checks are recorded');
});

test('unknown emails are throttled like real ones (no account enumeration through 429s)', async () => {
  for (let i = 0; i < 5; i++) assert.is((await attempt('ghost@nowhere.example', 'whatever pw', `198.51.100.${40 + i}`)).status, 401);
  assert.is((await attempt('ghost@nowhere.example', 'whatever pw', '198.51.100.50')).status, 429);
});

test('at most 100 failed attempts per hour per account; the block lifts as they age out', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  // 100 failures spread over the last 50 minutes (30 s apart: within the growing-delay schedule's 60 s cap).
  const account = u.email.toLowerCase();
  for (let i = 0; i < 100; i++) {
    await t.db.query(sql`INSERT INTO login_attempts (at, account, ip, succeeded)
      VALUES (${new Date(clock.getTime() - (100 - i) * 30_000)}, ${account}, ${`192.0.2.${i % 250}`}::inet, false)`);
  }
  seconds(61); // the per-attempt delay (60 s) has passed; only the hourly cap remains
  const capped = await attempt(u.email, u.password, '203.0.113.200');
  assert.is(capped.status, 429);
  // The oldest of the 100 was 3000 s + 61 s ago: it leaves the hour window in 3600 - 3061 = 539 s.
  assert.is(capped.headers.get('retry-after'), '539');
  seconds(539);
  assert.is((await attempt(u.email, u.password, '203.0.113.200')).status, 303);
});

test('per IP: 20 free failures across accounts, then that IP waits; other IPs do not', async () => {
  const ip = '198.51.100.77';
  for (let i = 0; i < 20; i++) assert.is((await attempt(`spray${i}@victims.example`, 'Winter2026!', ip)).status, 401);
  const blocked = await attempt('spray99@victims.example', 'Winter2026!', ip);
  assert.is(blocked.status, 429);
  assert.is(blocked.headers.get('retry-after'), '1');
  assert.is((await attempt('spray99@victims.example', 'Winter2026!', '198.51.100.78')).status, 401, 'another IP is not blocked');
  seconds(1);
  assert.is((await attempt('spray98@victims.example', 'Winter2026!', ip)).status, 401);
  assert.is((await attempt('spray97@victims.example', 'Winter2026!', ip)).headers.get('retry-after'), '2');
});

test('a known device keeps its owner in while an attacker hammers the account', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const first = await attempt(u.email, u.password, '198.51.100.5');
  assert.is(first.status, 303);
  const device = first.headers.getSetCookie().find((l) => l.startsWith('mq_device='))!;
  assert.ok(device, 'a known-device cookie is set at sign-in');
  assert.match(device, /HttpOnly/);
  const deviceCookie = device.split(';')[0];
  // The attacker, from many IPs, drives the account into its delays.
  for (let i = 0; i < 12; i++) { await attempt(u.email, `guess ${i} xx`, `203.0.113.${i + 1}`); seconds(1); }
  assert.is((await attempt(u.email, u.password, '198.51.100.5')).status, 429, 'an unknown browser is throttled');
  const owner = await attempt(u.email, u.password, '198.51.100.5', deviceCookie);
  assert.is(owner.status, 303, 'the owner\'s browser is not');
  // The device cookie is bound to its account: it does not help against another one.
  const other = await createUser(t.db, { role: 'subscriber' });
  for (let i = 0; i < 6; i++) await attempt(other.email, `guess ${i} yy`, `203.0.113.${50 + i}`);
  assert.is((await attempt(other.email, other.password, '198.51.100.5', deviceCookie)).status, 429);
  // And a device has its own growing delay.
  for (let i = 0; i < 5; i++) assert.is((await attempt(u.email, 'typo typo typo', '198.51.100.5', deviceCookie)).status, 401);
  assert.is((await attempt(u.email, u.password, '198.51.100.5', deviceCookie)).status, 429);
});

test('parallel guesses are counted before their passwords are checked: a burst of 12 gets 5 tries', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const statuses = await Promise.all(Array.from({ length: 12 }, (_, i) => attempt(u.email, `burst guess ${i}`, `198.51.100.${120 + i}`).then((r) => r.status)));
  assert.equal(statuses.filter((s) => s === 401).length, 5, statuses.join(','));
  assert.equal(statuses.filter((s) => s === 429).length, 7, statuses.join(','));
});

test('sign-ups: at most SIGNUPS_PER_IP_HOUR per address and hour (taken emails count), then 429 before any hashing', async () => {
  const signup = (email: string, ip: string) => app().request('/signup', { method: 'POST',
    headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ display_name: 'Viewer', email, password: 'long enough pw 1', confirm_password: 'long enough pw 1' }).toString() }, from(ip));
  const ip = '192.0.2.50';
  await createUser(t.db, { role: 'subscriber', email: 'first@signup.example' });
  const taken = await signup('FIRST@signup.example', ip);
  assert.is(taken.status, 200, 'a taken email answers like any other (its owner gets a notice)…');
  for (let i = 1; i < SIGNUPS_PER_IP_HOUR; i++) assert.is((await signup(`s${i}@signup.example`, ip)).status, 200, `sign-up ${i + 1}`);
  const users = async () => (await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM signup_requests WHERE email LIKE '%@signup.example'`))!.n;
  assert.is(await users(), SIGNUPS_PER_IP_HOUR - 1, '…and counts against the limit');
  const blocked = await signup('one-more@signup.example', ip);
  assert.is(blocked.status, 429);
  assert.ok(Number(blocked.headers.get('retry-after')) > 0);
  assert.match(await blocked.text(), /Too many sign-ups from your network in the last hour/);
  assert.is(await users(), SIGNUPS_PER_IP_HOUR - 1, 'nothing created');
  assert.is((await signup('other-ip@signup.example', '192.0.2.51')).status, 200, 'another address is not affected');
  seconds(3600);
  assert.is((await signup('later@signup.example', ip)).status, 200, 'the limit lifts as the hour passes');
  const refused = (await t.db.one<{ after: unknown }>(sql`SELECT after FROM audit_log WHERE action = 'user.signup_refused'`))!;
  assert.equal(refused.after, { reason: 'email taken' }, 'the refusal is audited without the probed email');
});

test.run();
