// /admin/users and /admin/audit: list/search/pagination, create (temporary password once), edit, role change,
// disable/enable, reset password, sign-out, the last-admin guard, audit rows for every action, form validation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, loginAs, authedRequest, sessionCookie, sessionCookieFrom, TEST_ORIGIN, type TestUser } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';

const t = useDatabase(test);
const clock = new Date('2026-04-01T12:00:00Z');
const app = () => createApp({ db: t.db, now: () => clock, log: () => {} });
const ENV = { incoming: { socket: { remoteAddress: '::ffff:203.0.113.7' } } }; // what @hono/node-server passes
let admin: TestUser;
let adminCookie: string;

const post = (path: string, body: Record<string, string> = {}, cookie = adminCookie) =>
  authedRequest(app(), cookie, path, { method: 'POST', body }, ENV);
const get = (path: string, cookie = adminCookie) => authedRequest(app(), cookie, path, {}, ENV);
const auditRows = (targetId: number) => t.db.query(sql`SELECT actor_id, action, before, after, host(ip) AS ip, request_id
  FROM audit_log WHERE target_type = 'user' AND target_id = ${String(targetId)} ORDER BY id`);
const tempPassword = (body: string) => /id="temporary-password">([^<]+)</.exec(body)?.[1];

test.before(async () => {
  admin = await createUser(t.db, { role: 'admin', email: 'root@test.example', name: 'Root Admin' });
  adminCookie = await loginAs(app(), admin.email, admin.password);
});

test('create: validation messages beside the fields, input kept, nothing written', async () => {
  const before = (await t.db.one(sql`SELECT count(*) AS n FROM users`))!.n;
  const res = await post('/admin/users', { email: 'not-an-email', display_name: 'Kept Name', role: 'analyst' });
  assert.is(res.status, 400);
  const body = await res.text();
  assert.match(body, /id="f-email-error">Enter an email address like name@example.com</);
  assert.match(body, /value="not-an-email"/);
  assert.match(body, /value="Kept Name"/);
  assert.match(body, /<option value="analyst" selected>/);
  const noName = await (await post('/admin/users', { email: 'x@test.example', display_name: '  ', role: 'analyst' })).text();
  assert.match(noName, /id="f-display_name-error">Enter a name</);
  const badRole = await post('/admin/users', { email: 'x@test.example', display_name: 'X', role: 'superuser' });
  assert.is(badRole.status, 400);
  assert.match(await badRole.text(), /id="f-role-error">Choose one of admin, analyst, manager, subscriber/);
  const dup = await post('/admin/users', { email: 'ROOT@test.example', display_name: 'Dup', role: 'analyst' });
  assert.is(dup.status, 409);
  assert.match(await dup.text(), /id="f-email-error">A user with this email already exists/);
  assert.is((await t.db.one(sql`SELECT count(*) AS n FROM users`))!.n, before, 'no user was written');
  assert.is((await t.db.one(sql`SELECT count(*) AS n FROM audit_log WHERE action = 'user.create'`))!.n, 0);
});

test('create: temporary password shown once, forced change at first sign-in, audited with actor/ip/request id', async () => {
  const res = await post('/admin/users', { email: 'new.analyst@test.example', display_name: 'New Analyst', role: 'analyst' });
  assert.is(res.status, 200);
  assert.is(res.headers.get('cache-control'), 'no-store');
  const body = await res.text();
  const temp = tempPassword(body)!;
  assert.ok(temp && temp.length >= 16, 'a temporary password is shown');
  const u = (await t.db.one(sql`SELECT id, role, must_change_password, password_hash FROM users WHERE email = 'new.analyst@test.example'`))!;
  assert.is(u.role, 'analyst');
  assert.is(u.must_change_password, true);
  assert.match(u.password_hash, /^\$argon2id\$/);
  assert.not.match(await (await get(`/admin/users/${u.id}`)).text(), new RegExp(temp), 'never shown again');
  const [row] = await auditRows(u.id);
  assert.is(row.action, 'user.create');
  assert.is(row.actor_id, admin.id);
  assert.is(row.ip, '203.0.113.7');
  assert.ok(row.request_id);
  assert.is(row.after.role, 'analyst');
  assert.not.ok(JSON.stringify(row).includes(temp), 'the password is not in the audit log');

  // First sign-in with the temporary password: everything redirects to the change-password form until it is done.
  const login = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: 'new.analyst@test.example', password: temp, next: '/account' }).toString() });
  assert.is(login.status, 303);
  assert.is(login.headers.get('location'), '/account/password?next=%2Faccount');
  const cookie = sessionCookieFrom(login);
  const blocked = await authedRequest(app(), cookie, '/account');
  assert.is(blocked.status, 303);
  assert.match(blocked.headers.get('location')!, /^\/account\/password\?next=/);
  const form = await (await authedRequest(app(), cookie, '/account/password')).text();
  assert.match(form, /reset by an administrator/);
  const short = await authedRequest(app(), cookie, '/account/password', { method: 'POST', body: { current_password: temp, new_password: 'short', confirm_password: 'short' } });
  assert.is(short.status, 400);
  assert.match(await short.text(), /id="f-new_password-error">Use at least 10 characters/);
  const done = await authedRequest(app(), cookie, '/account/password?next=%2Faccount', { method: 'POST',
    body: { current_password: temp, new_password: 'a fresh passphrase 42', confirm_password: 'a fresh passphrase 42' } });
  assert.is(done.status, 303);
  assert.is(done.headers.get('location'), '/account');
  const rotated = sessionCookieFrom(done);
  assert.ok(rotated && rotated !== cookie, 'the session id rotates on a password change');
  assert.is((await authedRequest(app(), cookie, '/account')).status, 303, 'the old session ended');
  assert.is((await authedRequest(app(), rotated, '/account')).status, 200);
  assert.is((await t.db.one(sql`SELECT must_change_password FROM users WHERE id = ${u.id}`))!.must_change_password, false);
});

test('list: search, filters, plan column and pagination', async () => {
  for (let i = 0; i < 30; i++) {
    await t.db.query(sql`INSERT INTO users (email, display_name, role, created_at)
      VALUES (${`bulk${String(i).padStart(2, '0')}@list.example`}, ${`Bulk ${i}`}, 'subscriber', ${new Date(Date.UTC(2026, 0, 1 + i))})`);
  }
  const sub = (await t.db.one(sql`SELECT id FROM users WHERE email = 'bulk29@list.example'`))!.id;
  await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    SELECT ${sub}, id, 'active', '2026-03-01', '2026-04-01' FROM plans WHERE code = 'premium'`);
  const p1 = await (await get('/admin/users?q=list.example')).text();
  assert.match(p1, /Page 1 of 2 · 30 in all/);
  assert.match(p1, /bulk29@list\.example/, 'newest first');
  assert.not.match(p1, /bulk00@list\.example/);
  assert.match(p1, /<td>Premium<\/td>/);
  const p2 = await (await get('/admin/users?q=list.example&page=2')).text();
  assert.match(p2, /bulk00@list\.example/);
  assert.match(p2, /Page 2 of 2/);
  const one = await (await get('/admin/users?q=Bulk%207')).text();
  assert.match(one, /bulk07@list\.example/);
  assert.match(one, /1 in all/);
  const admins = await (await get('/admin/users?role=admin')).text();
  assert.match(admins, /root@test\.example/);
  assert.not.match(admins, /bulk\d\d@/);
  const pct = await (await get('/admin/users?q=%25')).text();
  assert.match(pct, /0 in all/, 'LIKE wildcards in the search are literal');
});

test('edit name, change role (sessions end, audited), disable and enable, reset password, sign out', async () => {
  const u = await createUser(t.db, { role: 'analyst', name: 'Ann Alyst' });
  const userCookie = await loginAs(app(), u.email, u.password);

  const rename = await post(`/admin/users/${u.id}`, { display_name: 'Ann Analyst', role: 'analyst', status: 'active' });
  assert.is(rename.status, 303);
  assert.is((await authedRequest(app(), userCookie, '/account')).status, 200, 'a name change keeps sessions');

  const role = await post(`/admin/users/${u.id}`, { display_name: 'Ann Analyst', role: 'manager', status: 'active' });
  assert.is(role.status, 303);
  assert.is(role.headers.get('location'), `/admin/users/${u.id}?done=saved`);
  assert.is((await authedRequest(app(), userCookie, '/account')).status, 303, 'a role change ends the user\'s sessions');
  const managerCookie = await loginAs(app(), u.email, u.password);
  assert.is((await authedRequest(app(), managerCookie, '/admin/users')).status, 403);

  const disable = await post(`/admin/users/${u.id}/disable`);
  assert.is(disable.status, 303);
  assert.is((await authedRequest(app(), managerCookie, '/account')).status, 303, 'disabling ends sessions');
  const refused = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: u.email, password: u.password }).toString() });
  assert.is(refused.status, 403);
  assert.match(await refused.text(), /disabled/);
  assert.is((await post(`/admin/users/${u.id}/enable`)).status, 303);
  const again = await loginAs(app(), u.email, u.password);

  const reset = await post(`/admin/users/${u.id}/reset-password`);
  assert.is(reset.status, 200);
  const temp = tempPassword(await reset.text())!;
  assert.ok(temp);
  assert.is((await authedRequest(app(), again, '/account')).status, 303, 'reset ends sessions');
  const old = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: u.email, password: u.password }).toString() });
  assert.is(old.status, 401, 'the old password no longer works');
  const withTemp = await loginAs(app(), u.email, temp);
  assert.is((await post(`/admin/users/${u.id}/sign-out`)).status, 303);
  assert.is((await authedRequest(app(), withTemp, '/account/password')).status, 303, 'signed out by the admin');

  const rows = await auditRows(u.id);
  assert.equal(rows.map((r) => r.action), ['user.update', 'user.role_change', 'user.disable', 'user.enable', 'user.password_reset', 'user.sign_out']);
  assert.equal(rows[0].before, { display_name: 'Ann Alyst' });
  assert.equal(rows[0].after, { display_name: 'Ann Analyst' });
  assert.equal(rows[1].before, { role: 'analyst' });
  assert.equal(rows[1].after, { role: 'manager', sessions_ended: 1 });
  assert.equal(rows[2].after, { status: 'disabled', sessions_ended: 1 });
  assert.equal(rows[3].after, { status: 'active', sessions_ended: 0 });
  for (const r of rows) {
    assert.is(r.actor_id, admin.id);
    assert.is(r.ip, '203.0.113.7');
    assert.ok(r.request_id);
  }
});

test('edit validation: message beside the field, input kept, nothing changed', async () => {
  const u = await createUser(t.db, { role: 'subscriber', name: 'Sub Scriber' });
  const res = await post(`/admin/users/${u.id}`, { display_name: '', role: 'manager', status: 'active' });
  assert.is(res.status, 400);
  const body = await res.text();
  assert.match(body, /id="f-display_name-error">Enter a name</);
  assert.match(body, /<option value="manager" selected>/, 'the submitted role is kept');
  const bad = await post(`/admin/users/${u.id}`, { display_name: 'X', role: 'root', status: 'active' });
  assert.match(await bad.text(), /id="f-role-error">/);
  const row = (await t.db.one(sql`SELECT display_name, role FROM users WHERE id = ${u.id}`))!;
  assert.equal(row, { display_name: 'Sub Scriber', role: 'subscriber' });
  assert.is((await auditRows(u.id)).length, 0);
  assert.is((await get('/admin/users/999999999')).status, 404);
  assert.is((await post('/admin/users/999999999/disable')).status, 404);
  assert.is((await get('/admin/users/abc')).status, 404);
});

test('the last active admin cannot be demoted or disabled; with a second admin it can', async () => {
  // Only `admin` is an active admin here.
  const demote = await post(`/admin/users/${admin.id}`, { display_name: admin.name, role: 'analyst', status: 'active' });
  assert.is(demote.status, 409);
  assert.match(await demote.text(), /id="f-role-error">root@test\.example is the last active admin/);
  const disable = await post(`/admin/users/${admin.id}/disable`);
  assert.is(disable.status, 409);
  assert.match(await disable.text(), /last active admin/);
  const viaForm = await post(`/admin/users/${admin.id}`, { display_name: admin.name, role: 'admin', status: 'disabled' });
  assert.match(await viaForm.text(), /id="f-status-error">.*last active admin/);
  // A disabled admin does not count.
  const dormant = await createUser(t.db, { role: 'admin', status: 'disabled' });
  assert.is((await post(`/admin/users/${admin.id}/disable`)).status, 409);
  assert.is((await t.db.one(sql`SELECT role, status FROM users WHERE id = ${admin.id}`))!.status, 'active');
  assert.is((await auditRows(admin.id)).length, 0, 'refusals change nothing and write no audit row');

  // With a second active admin, the first may step down — and is signed out, since their privileges changed.
  const second = await createUser(t.db, { role: 'admin' });
  const own = await loginAs(app(), admin.email, admin.password);
  const stepDown = await post(`/admin/users/${admin.id}`, { display_name: admin.name, role: 'manager', status: 'active' }, own);
  assert.is(stepDown.status, 303);
  assert.is(stepDown.headers.get('location'), '/login');
  assert.is((await authedRequest(app(), own, '/admin/users')).status, 303);
  // Now `second` is the last one.
  const secondCookie = await sessionCookie(t.db, second.id);
  const refuse = await post(`/admin/users/${second.id}/disable`, {}, secondCookie);
  assert.is(refuse.status, 409);
  assert.is((await t.db.one(sql`SELECT count(*) AS n FROM users WHERE role = 'admin' AND status = 'active'`))!.n, 1);
  void dormant;
  adminCookie = secondCookie;
});

test('two admins demoting each other at once: exactly one succeeds', async () => {
  await t.db.query(sql`UPDATE users SET status = 'disabled' WHERE role = 'admin'`);
  const a = await createUser(t.db, { role: 'admin' }), b = await createUser(t.db, { role: 'admin' });
  const ca = await sessionCookie(t.db, a.id), cb = await sessionCookie(t.db, b.id);
  const [ra, rb] = await Promise.all([
    post(`/admin/users/${b.id}`, { display_name: b.name, role: 'analyst', status: 'active' }, ca),
    post(`/admin/users/${a.id}`, { display_name: a.name, role: 'analyst', status: 'active' }, cb),
  ]);
  // the loser is refused by the last-admin guard (409), or — when the winner's demotion, which ends the loser's
  // sessions, commits before the loser's request is authenticated — finds itself signed out (401)
  const statuses = [ra.status, rb.status].sort();
  assert.is(statuses.filter((x) => x === 303).length, 1, `exactly one succeeds: ${statuses}`);
  assert.ok(statuses.includes(409) || statuses.includes(401), `the other is refused: ${statuses}`);
  assert.is((await t.db.one(sql`SELECT count(*) AS n FROM users WHERE role = 'admin' AND status = 'active'`))!.n, 1);
  adminCookie = ra.status === 303 ? ca : cb;
});

test('user page shows the subscription and payments', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  const sub = (await t.db.one(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    SELECT ${u.id}, id, 'past_due', '2026-03-01', '2026-04-01' FROM plans WHERE code = 'standard' RETURNING id`))!.id;
  await t.db.query(sql`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, status, idempotency_key, failure_reason, settled_at)
    VALUES (${u.id}, ${sub}, 'renewal', '2026-03-01', '2026-04-01', 2, 1799, 'failed', ${`test-${u.id}-2`}, 'card_declined', '2026-03-04')`);
  const body = await (await get(`/admin/users/${u.id}`)).text();
  assert.match(body, /<td>Standard<\/td>/);
  assert.match(body, /past_due/);
  assert.match(body, /\$17\.99/);
  assert.match(body, /card_declined/);
});

test('audit page: an entry whose target is an email (first start writes the admin that way) does not break the page', async () => {
  await t.db.query(sql`INSERT INTO audit_log (action, target_type, target_id, after) VALUES ('user.create', 'user', 'first.admin@test.example', '{"via":"first start"}')`);
  const res = await get('/admin/audit');
  assert.is(res.status, 200);
  assert.is(res.headers.get('cache-control'), 'no-store', 'the audit log is never cached');
  assert.match(await res.text(), /first\.admin@test\.example/);
});

test('audit page: filters by action, actor, target, dates; bad dates are explained beside the field', async () => {
  const all = await (await get('/admin/audit')).text();
  assert.match(all, /user\.role_change/);
  const roleChanges = await (await get('/admin/audit?action=user.role_change')).text();
  assert.match(roleChanges, /user\.role_change/);
  assert.not.match(roleChanges, /<code>user\.disable<\/code>/);
  const byActor = await (await get(`/admin/audit?actor=${encodeURIComponent(admin.email)}`)).text();
  assert.match(byActor, /<code>user\.create<\/code>/);
  const target = (await t.db.one(sql`SELECT id FROM users WHERE email = 'new.analyst@test.example'`))!.id;
  const byTarget = await (await get(`/admin/audit?target=${target}`)).text();
  assert.match(byTarget, /<code>user\.create<\/code>/);
  assert.match(byTarget, /<code>user\.password_change<\/code>/);
  assert.not.match(byTarget, /<code>user\.role_change<\/code>/);
  const future = await (await get('/admin/audit?from=2030-01-01')).text();
  assert.match(future, /No audit entries/);
  const bad = await get('/admin/audit?from=2026-13-45&to=yesterday');
  assert.is(bad.status, 400);
  const badBody = await bad.text();
  assert.match(badBody, /id="f-from-error">Use a date like 2026-01-31/);
  assert.match(badBody, /id="f-to-error">Use a date like 2026-01-31/);
  assert.match(badBody, /value="2026-13-45"/);
});

test.run();
