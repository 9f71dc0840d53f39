// Personal API tokens: made by the CLI (`npm run users -- token`) and on /account (shown once, stored hashed), used as
// `Authorization: Bearer …` on /api with the owner's role (its reports only), refused when revoked, expired or the
// owner is disabled, and rate-limited per token (429 + Retry-After).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { createHash } from 'node:crypto';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest, type TestUser } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { runCommand } from '../server/auth/users-cli.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/reports/basic');
let now = new Date('2026-11-26T09:00:00Z');
let catalog: Catalog;
let app: ReturnType<typeof createApp>;
const users: Record<string, TestUser> = {};

test.before(async () => {
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g, g FROM generate_series(0, 40) g`);
  catalog = loadCatalog(FIXTURES);
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, now: () => now, log: () => {}, config: defaultConfig({ apiTokenRate: 1000 }) });
  for (const role of ['admin', 'analyst', 'manager', 'subscriber'] as const) users[role] = await createUser(t.db, { role });
});

async function cliToken(email: string, name: string, days?: string): Promise<string> {
  const out: string[] = [];
  await runCommand(t.db, ['token', '--email', email, '--name', name, ...(days ? ['--days', days] : [])], (l) => out.push(l));
  assert.is(out.length, 2, out.join('\n'));
  assert.match(out[0], new RegExp(`for ${email.replace(/[.]/g, '\\.')}`));
  return out[1];
}
const bearer = (token: string, url: string, a = app) => a.request(url, { headers: { Authorization: `Bearer ${token}` } });

test('the CLI prints a token once; the table keeps only its hash; it works for its owner\'s reports only', async () => {
  const token = await cliToken(users.analyst.email, 'nightly export');
  assert.match(token, /^mq_[A-Za-z0-9_-]{43}$/);
  const row = await t.db.one(sql`SELECT token_hash, prefix, expires_at, created_at FROM api_tokens WHERE user_id = ${users.analyst.id}`);
  assert.equal(row!.token_hash, createHash('sha256').update(token).digest());
  assert.is(row!.prefix, token.slice(0, 10));
  assert.is(row!.expires_at.getTime() - row!.created_at.getTime(), 90 * 86_400_000, 'default 90 days');
  const dump = JSON.stringify(await t.db.query(sql`SELECT * FROM api_tokens`));
  assert.not.ok(dump.includes(token.slice(10)), 'the token itself is nowhere in the table');

  const json = await bearer(token, '/api/reports/fx_by_kind.json');
  assert.is(json.status, 200);
  assert.ok(Array.isArray(await json.json()));
  const csv = await bearer(token, '/api/reports/fx_by_kind.csv');
  assert.is(csv.status, 200);
  assert.match(await csv.text(), /^day,kind,amount,n\r\n/);
  // the owner's role (analyst): not the admin-only report, not admin routes
  assert.is((await bearer(token, '/api/reports/fx_admin_only.json')).status, 403);
  assert.is((await bearer(token, '/api/marts/refresh', app)).status, 405); // GET on a POST route
  const refresh = await app.request('/api/marts/refresh', { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}' });
  assert.is(refresh.status, 403);
  const admin = await cliToken(users.admin.email, 'admin script');
  assert.is((await bearer(admin, '/api/reports/fx_admin_only.json')).status, 200);
  const sub = await cliToken(users.subscriber.email, 'subscriber script');
  assert.is((await bearer(sub, '/api/reports/fx_by_kind.json')).status, 403);
  // a token is for /api only: pages still need a session
  assert.is((await bearer(token, '/reports/fx_by_kind')).status, 303);
  // a changed role is the token's role from the next request on
  await t.db.query(sql`UPDATE users SET role = 'manager' WHERE id = ${users.analyst.id}`);
  assert.is((await bearer(token, '/api/reports/fx_plans.json')).status, 403, 'fx_plans is for admin and analyst');
  await t.db.query(sql`UPDATE users SET role = 'analyst' WHERE id = ${users.analyst.id}`);
  assert.is((await bearer(token, '/api/reports/fx_plans.json')).status, 200);
});

test('CLI input errors name the problem and write nothing', async () => {
  const before = (await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM api_tokens`))!.n;
  for (const [args, message] of [
    [['token', '--email', users.manager.email, '--name', 'x', '--days', '400'], /1 to 365/],
    [['token', '--email', users.manager.email], /--name is required/],
    [['token', '--email', 'nobody@example.com', '--name', 'x'], /no user/],
  ] as const) {
    let error: any;
    try { await runCommand(t.db, [...args], () => {}); } catch (e) { error = e; }
    assert.ok(error, `${args.join(' ')} fails`);
    assert.match(error.message, message as RegExp);
  }
  assert.is((await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM api_tokens`))!.n, before);
});

test('a revoked, expired, unknown or disabled owner\'s token is a 401', async () => {
  const token = await cliToken(users.manager.email, 'to revoke', '2');
  assert.is((await bearer(token, '/api/reports/fx_by_kind.json')).status, 200);
  // revoke on /account: the list shows the prefix only, the revoke form stops it at once
  const cookie = await sessionCookie(t.db, users.manager.id, { now });
  const account = await (await authedRequest(app, cookie, '/account')).text();
  assert.match(account, new RegExp(`<code>${token.slice(0, 10)}…</code>`));
  assert.not.ok(account.includes(token));
  const id = (await t.db.one<{ id: number }>(sql`SELECT id FROM api_tokens WHERE prefix = ${token.slice(0, 10)}`))!.id;
  const other = await sessionCookie(t.db, users.analyst.id, { now });
  assert.is((await authedRequest(app, other, '/account/tokens/revoke', { method: 'POST', body: { id: String(id) } })).status, 404, 'not yours');
  assert.is((await bearer(token, '/api/reports/fx_by_kind.json')).status, 200);
  const res = await authedRequest(app, cookie, '/account/tokens/revoke', { method: 'POST', body: { id: String(id) } });
  assert.is(res.status, 303);
  const refused = await bearer(token, '/api/reports/fx_by_kind.json');
  assert.is(refused.status, 401);
  assert.match((await refused.json()).error.message, /revoked/);
  assert.match(refused.headers.get('www-authenticate')!, /^Bearer /);

  const expiring = await cliToken(users.manager.email, 'short', '1');
  assert.is((await bearer(expiring, '/api/reports/fx_by_kind.json')).status, 200);
  const saved = now;
  // the CLI stamps tokens with the real clock; the app's clock is moved to the token's expiry
  now = (await t.db.one<{ expires_at: Date }>(sql`SELECT expires_at FROM api_tokens WHERE prefix = ${expiring.slice(0, 10)}`))!.expires_at;
  try {
    assert.match((await (await bearer(expiring, '/api/reports/fx_by_kind.json')).json()).error.message, /expired/);
  } finally { now = saved; }

  assert.is((await bearer('mq_' + 'x'.repeat(43), '/api/reports/fx_by_kind.json')).status, 401);
  assert.is((await app.request('/api/reports/fx_by_kind.json', { headers: { Authorization: 'Basic abc' } })).status, 401);
  const owner = await createUser(t.db, { role: 'analyst' });
  const ownerToken = await cliToken(owner.email, 'soon disabled');
  await t.db.query(sql`UPDATE users SET status = 'disabled' WHERE id = ${owner.id}`);
  assert.is((await bearer(ownerToken, '/api/reports/fx_by_kind.json')).status, 401);
});

test('/account makes a token, shows it once, and refuses bad input with the field named', async () => {
  const cookie = await sessionCookie(t.db, users.manager.id, { now });
  const made = await authedRequest(app, cookie, '/account/tokens', { method: 'POST', body: { name: 'from the page', days: '30' } });
  assert.is(made.status, 201);
  const page = await made.text();
  const token = /<code class="token" id="new-token">(mq_[A-Za-z0-9_-]+)<\/code>/.exec(page)![1];
  assert.is((await bearer(token, '/api/reports/fx_by_kind.json')).status, 200);
  assert.not.ok((await (await authedRequest(app, cookie, '/account')).text()).includes(token), 'never shown again');
  const before = (await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM api_tokens`))!.n;
  for (const [body, field] of [[{ name: '', days: '30' }, 'name'], [{ name: 'x', days: '0' }, 'days'], [{ name: 'x', days: 'soon' }, 'days']] as const) {
    const res = await authedRequest(app, cookie, '/account/tokens', { method: 'POST', body: { ...body } });
    assert.is(res.status, 400);
    assert.match(await res.text(), new RegExp(`id="f-${field}-error"`));
  }
  assert.is((await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM api_tokens`))!.n, before);
  const audit = await t.db.query(sql`SELECT action FROM audit_log WHERE action LIKE 'api_token.%'`);
  assert.ok(audit.some((a) => a.action === 'api_token.create') && audit.some((a) => a.action === 'api_token.revoke'));
});

test('each token has its own rate: beyond it, 429 with Retry-After; it refills with time', async () => {
  let ms = now.getTime();
  const limited = createApp({ db: t.db, catalog, now: () => new Date(ms), log: () => {}, config: defaultConfig({ apiTokenRate: 3 }) });
  const a = await cliToken(users.analyst.email, 'rate a');
  const b = await cliToken(users.analyst.email, 'rate b');
  for (let i = 0; i < 3; i++) assert.is((await bearer(a, '/api/reports/fx_by_kind.json', limited)).status, 200, `request ${i + 1}`);
  const over = await bearer(a, '/api/reports/fx_by_kind.json', limited);
  assert.is(over.status, 429);
  assert.is(over.headers.get('retry-after'), '20', 'one request every 20 s at 3 a minute');
  assert.is((await bearer(b, '/api/reports/fx_by_kind.json', limited)).status, 200, 'another token has its own budget');
  ms += 20_000;
  assert.is((await bearer(a, '/api/reports/fx_by_kind.json', limited)).status, 200, 'refilled');
  assert.is((await bearer(a, '/api/reports/fx_by_kind.json', limited)).status, 429);
});

test.run();
