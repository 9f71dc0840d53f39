// The operator CLI (npm run users -- …) and the legacy import: SHA-256 users sign in and are rehashed to argon2id.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { useDatabase } from './helpers/db.ts';
import { loginAs, authedRequest, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { runCommand, csvRows } from '../server/auth/users-cli.ts';

const t = useDatabase(test);
const app = () => createApp({ db: t.db, log: () => {} });
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-users-cli-'));
const root = path.resolve(import.meta.dirname, '..');
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function rejects(fn: () => Promise<unknown>, re: RegExp) {
  const err = await fn().then(() => undefined, (e) => e as Error);
  assert.ok(err, `expected a rejection matching ${re}`);
  assert.match(err!.message, re);
}

async function run(...argv: string[]) {
  const lines: string[] = [];
  await runCommand(t.db, argv, (l) => lines.push(l));
  return lines.join('\n');
}
const csv = (name: string, text: string) => { const f = path.join(dir, name); fs.writeFileSync(f, text); return f; };

test('npm run users -- create (a real process, DATABASE_URL), then the user signs in', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'server/auth/users-cli.ts', 'create',
    '--email', 'ops@test.example', '--password', 'operator pass 123', '--role', 'manager', '--name', 'Ops Person'],
    { cwd: root, env: { ...process.env, DATABASE_URL: t.url } });
  assert.match(stdout, /created user \d+ ops@test\.example \(manager\)/);
  const u = (await t.db.one(sql`SELECT display_name, role, must_change_password FROM users WHERE email = 'ops@test.example'`))!;
  assert.equal(u, { display_name: 'Ops Person', role: 'manager', must_change_password: false });
  const cookie = await loginAs(app(), 'ops@test.example', 'operator pass 123');
  assert.is((await authedRequest(app(), cookie, '/account')).status, 200);
  const audit = (await t.db.one(sql`SELECT actor_id, request_id FROM audit_log WHERE action = 'user.create' ORDER BY id DESC LIMIT 1`))!;
  assert.is(audit.actor_id, null);
  assert.match(audit.request_id, /^cli-/);
});

test('a bad command exits 2 with the usage; a refused operation names the field', async () => {
  const exec = promisify(execFile);
  const env = { ...process.env, DATABASE_URL: t.url };
  const bad = await exec(process.execPath, ['--import', 'tsx', 'server/auth/users-cli.ts', 'create', '--email', 'x@test.example', '--role', 'wizard'], { cwd: root, env })
    .then(() => null, (e) => e);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--role must be one of admin, analyst, manager, subscriber/);
  assert.match(bad.stderr, /usage: npm run users/);
  await rejects(() => run('create', '--email', 'nope', '--role', 'analyst'), /Enter an email address/);
  await rejects(() => run('create', '--email', 'weak@test.example', '--role', 'analyst', '--password', 'short'), /at least 10 characters/);
  await rejects(() => run('frobnicate'), /unknown command "frobnicate"/);
});

test('create without --password prints a temporary password; set-role, reset-password, disable, enable, list', async () => {
  const out = await run('create', '--email', 'temp@test.example', '--role', 'analyst');
  const temp = /temporary password .*: (\S+)$/m.exec(out)![1];
  const id = (await t.db.one(sql`SELECT id, must_change_password FROM users WHERE email = 'temp@test.example'`))!;
  assert.is(id.must_change_password, true);
  const cookie = await loginAs(app(), 'temp@test.example', temp);
  assert.match(await run('set-role', '--email', 'TEMP@test.example', '--role', 'manager'), /role analyst -> manager; 1 session\(s\) ended/);
  assert.is((await authedRequest(app(), cookie, '/account/password')).status, 303, 'the role change ended the session');
  assert.match(await run('reset-password', '--email', 'temp@test.example', '--password', 'chosen by ops 77'), /password reset/);
  const again = await loginAs(app(), 'temp@test.example', 'chosen by ops 77');
  assert.match(await run('disable', '--email', 'temp@test.example'), /disabled; 1 session\(s\) ended/);
  assert.is((await authedRequest(app(), again, '/account')).status, 303);
  assert.match(await run('disable', '--email', 'temp@test.example'), /already disabled/);
  const list = await run('list', '--status', 'disabled');
  assert.match(list, /\ttemp@test\.example\ttemp\tmanager\tdisabled\t/);
  assert.not.match(list, /ops@test\.example/);
  assert.match(await run('enable', '--email', 'temp@test.example'), /enabled/);
  const actions = (await t.db.query(sql`SELECT action FROM audit_log WHERE target_id = ${String(id.id)} ORDER BY id`)).map((r) => r.action);
  assert.equal(actions, ['user.create', 'user.role_change', 'user.password_reset', 'user.disable', 'user.enable']);
  await rejects(() => run('disable', '--email', 'nobody@test.example'), /no user with email/);
});

test('the CLI keeps the last-admin guard', async () => {
  await run('create', '--email', 'only.admin@test.example', '--role', 'admin', '--password', 'admin pass 9876');
  await rejects(() => run('set-role', '--email', 'only.admin@test.example', '--role', 'analyst'), /last active admin/);
  await rejects(() => run('disable', '--email', 'only.admin@test.example'), /last active admin/);
  assert.is((await t.db.one(sql`SELECT role FROM users WHERE email = 'only.admin@test.example'`))!.role, 'admin');
});

test('CSV reader: quotes, doubled quotes, commas and newlines inside quotes, CRLF, BOM', () => {
  const rows = [...csvRows('\uFEFFemail,name\r\n"a@x.example","Doe, ""Jo""\nline2"\r\nb@x.example,Bee\n')];
  assert.equal(rows, [[1, ['email', 'name']], [2, ['a@x.example', 'Doe, "Jo"\nline2']], [4, ['b@x.example', 'Bee']]]);
});

test('import: every problem reported by line and field, nothing written', async () => {
  const before = (await t.db.one(sql`SELECT count(*) AS n FROM users`))!.n;
  const f = csv('bad.csv', [
    'email,name,role,sha256',
    `good@legacy.example,Good,user,${sha('pw')}`,
    `broken-email,Bad,user,${sha('pw')}`,
    `r@legacy.example,Role,emperor,${sha('pw')}`,
    'h@legacy.example,Hash,admin,abc123',
    `GOOD@legacy.example,Dup,user,${sha('pw')}`,
  ].join('\n'));
  const err = await run('import', f).then(() => '', (e) => e.message);
  assert.match(err, /line 3: email: Enter an email address/);
  assert.match(err, /line 4: role: "emperor" is not one of/);
  assert.match(err, /line 5: sha256: a SHA-256 hash is 64 hex digits/);
  assert.match(err, /line 6: email: GOOD@legacy\.example already appears on line 2/);
  assert.is((await t.db.one(sql`SELECT count(*) AS n FROM users`))!.n, before);
  const missing = csv('nohash.csv', 'email,name,role\na@b.example,A,user\n');
  await rejects(() => run('import', missing), /header has no "sha256" column/);
});

test('legacy SHA-256 users: import, first sign-in rehashes to argon2id, the password keeps working', async () => {
  const f = csv('users.csv', [
    'email,name,role,sha256',
    `alice@legacy.example,"Alice, from the old system",user,${sha('alice-old-password')}`,
    `bob@legacy.example,Bob,admin,${sha('bob-old-password').toUpperCase()}`,
  ].join('\n'));
  assert.match(await run('import', f), /imported 2 user\(s\)/);
  const alice = (await t.db.one(sql`SELECT id, role, display_name, password_hash FROM users WHERE email = 'alice@legacy.example'`))!;
  assert.is(alice.role, 'subscriber', '"user" in the old system is a subscriber');
  assert.is(alice.display_name, 'Alice, from the old system');
  assert.is(alice.password_hash, `sha256$${sha('alice-old-password')}`);
  assert.match(await run('import', f).then(() => '', (e) => e.message), /line 2: email: alice@legacy\.example already exists/);
  assert.match(await run('import', f, '--skip-existing'), /imported 0 user\(s\), skipped 2 existing/);

  const wrong = await app().request('/login', { method: 'POST', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email: 'alice@legacy.example', password: 'not-alices' }).toString() });
  assert.is(wrong.status, 401);
  assert.match((await t.db.one(sql`SELECT password_hash FROM users WHERE id = ${alice.id}`))!.password_hash, /^sha256\$/, 'a failed login does not rehash');

  await loginAs(app(), 'alice@legacy.example', 'alice-old-password');
  const upgraded = (await t.db.one(sql`SELECT password_hash FROM users WHERE id = ${alice.id}`))!.password_hash;
  assert.match(upgraded, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  const audit = await t.db.query(sql`SELECT action, before, after FROM audit_log WHERE target_id = ${String(alice.id)} ORDER BY id`);
  assert.equal(audit.map((r) => r.action), ['user.import', 'user.password_upgrade']);
  await loginAs(app(), 'alice@legacy.example', 'alice-old-password'); // still the same password, now on argon2id
  assert.is((await t.db.one(sql`SELECT password_hash FROM users WHERE id = ${alice.id}`))!.password_hash, upgraded, 'rehashed once');
  await loginAs(app(), 'bob@legacy.example', 'bob-old-password'); // upper-case hex in the export is fine
});

test.run();
