// Signed embed links over HTTP: made on /embeds by a manager, opened without a session; refused (403) when tampered,
// unsigned (alg none), signed with another algorithm or an unknown key, for another resource, with a changed locked
// parameter, or revoked; 410 "link expired" after the expiry; every view logged; keys rotate by kid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import { readFileSync } from 'node:fs';
import { SignJWT, decodeJwt } from 'jose';
import { HtmlValidate } from 'html-validate';
import { useDatabase, createDatabase } from './helpers/db.ts';
import { createDb } from '../server/db/index.ts';
import { embedKeys } from '../server/sharing/embeds.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';

const t = useDatabase(test);
let now = new Date('2026-11-26T09:00:00Z');
const clock = () => now;
let catalog: Catalog;
let app: ReturnType<typeof createApp>;
const cookies: Record<string, string> = {};
const ids: Record<string, number> = {};

test.before(async () => {
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, now: clock, log: () => {} });
  for (const who of ['admin', 'manager', 'manager2', 'analyst'] as const) {
    const u = await createUser(t.db, { role: who === 'manager2' ? 'manager' : who });
    ids[who] = u.id;
    cookies[who] = await sessionCookie(t.db, u.id, { now });
  }
});

/** Creates a link through POST /embeds; returns its id, path and token. */
async function makeLink(who: string, body: Record<string, string>) {
  const res = await authedRequest(app, cookies[who], '/embeds', { method: 'POST', body });
  assert.is(res.status, 303, await res.clone().text());
  const id = /created=([0-9a-f-]{36})/.exec(res.headers.get('location')!)![1];
  const row = (await t.db.one<{ token: string; resource_kind: string; resource_id: string }>(sql`SELECT token, resource_kind, resource_id FROM embed_links WHERE id = ${id}::uuid`))!;
  return { id, token: row.token, path: `/embed/${row.resource_kind}s/${row.resource_id}?t=${encodeURIComponent(row.token)}` };
}
const open = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers });
const views = async (id: string) => (await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM embed_views WHERE link_id = ${id}::uuid`))!.n;

let report: Awaited<ReturnType<typeof makeLink>>;

test('a manager makes a report link; anyone opens it without a session, framed only by the allowed origin', async () => {
  report = await makeLink('manager', { resource: 'report:mrr_trend', locked: 'from=2026-01', free: 'to', days: '3', origin: 'https://intranet.example.com' });
  const res = await open(report.path, { Referer: 'https://intranet.example.com/wiki/kpis' });
  assert.is(res.status, 200);
  const body = await res.text();
  assert.match(res.headers.get('content-security-policy')!, /frame-ancestors https:\/\/intranet\.example\.com(;|$)/);
  assert.is(res.headers.get('x-frame-options'), null);
  assert.match(res.headers.get('cache-control')!, /no-store/);
  assert.match(body, /<mq-chart report="mrr_trend" params="from=2026-01"/);
  assert.match(body, /src="\/embed\/reports\/mrr_trend\/data\?t=/);
  assert.not.match(body, /class="topbar"/, 'the resource alone: no navigation');
  assert.match(body, /name="to"/, 'a field for the freed parameter');
  assert.not.match(body, /name="from"/, 'no field for the locked one');
  const data = await open(`/embed/reports/mrr_trend/data?t=${encodeURIComponent(report.token)}`);
  assert.is(data.status, 200);
  const json = await data.json();
  assert.is(json.id, 'mrr_trend');
  assert.is(json.params.from, '2026-01');
  assert.ok(json.spec, 'the Vega-Lite spec <mq-chart> draws');
  // the view is logged: who embedded (the link's creator), where, when; data requests are not page views
  const v = await t.db.one(sql`SELECT v.referrer, v.viewed_at, l.created_by FROM embed_views v JOIN embed_links l ON l.id = v.link_id WHERE link_id = ${report.id}::uuid`);
  assert.is(v!.referrer, 'https://intranet.example.com/wiki/kpis');
  assert.is(v!.created_by, ids.manager);
  assert.equal(v!.viewed_at, now);
  assert.is(await views(report.id), 1);
  const list = await (await authedRequest(app, cookies.admin, '/embeds')).text();
  assert.match(list, /intranet\.example\.com\/wiki\/kpis/);
  // the form can be pre-filled from the page being shared
  const prefilled = await (await authedRequest(app, cookies.manager, '/embeds?resource=dashboard:executive_overview&locked=period%3D6m')).text();
  assert.match(prefilled, /<option value="dashboard:executive_overview" selected>/);
  assert.match(prefilled, /name="locked" type="text" value="period=6m"/);
  assert.match(prefilled, /<a href="\/embeds">Embeds<\/a>/);
  // without an allowed origin only Marquee itself may frame it
  const plain = await makeLink('manager', { resource: 'report:mrr_trend' });
  assert.match((await open(plain.path)).headers.get('content-security-policy')!, /frame-ancestors 'self'/);
});

test('the viewer may change freed parameters, never locked or other ones', async () => {
  const q = `t=${encodeURIComponent(report.token)}`;
  const ok = await open(`/embed/reports/mrr_trend/data?${q}&to=2026-06`);
  assert.is(ok.status, 200);
  assert.is((await ok.json()).params.to, '2026-06');
  assert.is((await open(`/embed/reports/mrr_trend/data?${q}&from=2026-01`)).status, 200, 'the locked value itself is fine');
  for (const bad of ['from=2025-01', 'from=2026-01&from=2025-01', 'plan=premium']) {
    assert.is((await open(`/embed/reports/mrr_trend?${q}&${bad}`)).status, 403, bad);
    assert.is((await open(`/embed/reports/mrr_trend/data?${q}&${bad}`)).status, 403, `${bad} (data)`);
  }
  assert.is((await open(`/embed/reports/mrr_trend/data?${q}&to=not-a-month`)).status, 400);
});

test('a tampered, unsigned, wrongly signed or foreign-key token is refused with 403', async () => {
  const [h, p, s] = report.token.split('.');
  const payload = decodeJwt(report.token);
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  const key = (await t.db.one<{ kid: string; secret: Buffer }>(sql`SELECT kid, secret FROM embed_keys`))!;
  const cases: Record<string, string> = {
    'payload changed (lock widened)': `${h}.${b64({ ...payload, lock: {} })}.${s}`,
    'signature flipped': `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`,
    'alg none, no signature': `${b64({ alg: 'none', kid: header.kid })}.${p}.`,
    'alg none, old signature': `${b64({ alg: 'none', kid: header.kid })}.${p}.${s}`,
    'HS512 with the right secret': await new SignJWT(payload).setProtectedHeader({ alg: 'HS512', kid: key.kid }).sign(key.secret),
    'unknown kid': await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'someone-else' }).sign(randomBytes(32)),
    'right kid, wrong secret': await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(randomBytes(32)),
    'not a JWT': 'hello',
  };
  for (const [what, token] of Object.entries(cases)) {
    const res = await open(`/embed/reports/mrr_trend?t=${encodeURIComponent(token)}`);
    assert.is(res.status, 403, what);
    assert.match(await res.text(), /not valid/, what);
  }
  assert.is((await open('/embed/reports/mrr_trend')).status, 403, 'no token at all');
  // a genuine token re-signed by us with the right key works: the refusals above are about the token, not the test
  const resigned = await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(key.secret);
  assert.is((await open(`/embed/reports/mrr_trend?t=${encodeURIComponent(resigned)}`)).status, 200);
});

test('a token for another resource is refused', async () => {
  const q = `t=${encodeURIComponent(report.token)}`;
  assert.is((await open(`/embed/reports/plan_mix?${q}`)).status, 403);
  assert.is((await open(`/embed/reports/plan_mix/data?${q}`)).status, 403);
  assert.is((await open(`/embed/dashboards/executive_overview?${q}`)).status, 403);
  assert.is((await open(`/embed/dashboards/executive_overview/data/0?${q}`)).status, 403);
});

test('keys rotate by kid: configured keys sign, older keys still verify, a dropped key stops its links', async () => {
  const db = (await t.db.one<{ kid: string; secret: Buffer }>(sql`SELECT kid, secret FROM embed_keys`))!;
  const fresh = { kid: 'k2', secret: new Uint8Array(randomBytes(32)) };
  const rotated = createApp({ db: t.db, catalog, now: clock, log: () => {},
    config: defaultConfig({ embedKeys: [fresh, { kid: db.kid, secret: new Uint8Array(db.secret) }] }) });
  assert.is((await rotated.request(report.path)).status, 200, 'a link signed with the older key');
  const res = await authedRequest(rotated, cookies.manager, '/embeds', { method: 'POST', body: { resource: 'report:mrr_trend' } });
  const id = /created=([0-9a-f-]{36})/.exec(res.headers.get('location')!)![1];
  const token = (await t.db.one<{ token: string }>(sql`SELECT token FROM embed_links WHERE id = ${id}::uuid`))!.token;
  assert.is(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid, 'k2', 'the first configured key signs');
  const dropped = createApp({ db: t.db, catalog, now: clock, log: () => {}, config: defaultConfig({ embedKeys: [fresh] }) });
  assert.is((await dropped.request(report.path)).status, 403, 'the old key is gone');
  assert.is((await dropped.request(`/embed/reports/mrr_trend?t=${token}`)).status, 200);
});

test('an expired link shows a clear "link expired" page (410)', async () => {
  const saved = now;
  try {
    now = new Date(saved.getTime() + 3 * 86_400_000 + 1000);
    const res = await open(report.path);
    assert.is(res.status, 410);
    assert.match(await res.text(), /This embed link has expired/);
    assert.is((await open(`/embed/reports/mrr_trend/data?t=${encodeURIComponent(report.token)}`)).status, 410);
  } finally {
    now = saved;
  }
});

test('a revoked link is refused; managers revoke their own links, admins any', async () => {
  const link = await makeLink('manager', { resource: 'report:mrr_trend' });
  assert.is((await open(link.path)).status, 200);
  assert.is((await authedRequest(app, cookies.manager2, '/embeds/revoke', { method: 'POST', body: { id: link.id } })).status, 403);
  assert.is((await open(link.path)).status, 200);
  const res = await authedRequest(app, cookies.manager, '/embeds/revoke', { method: 'POST', body: { id: link.id } });
  assert.is(res.status, 303);
  const refused = await open(link.path);
  assert.is(refused.status, 403);
  assert.match(await refused.text(), /revoked/);
  const other = await makeLink('manager2', { resource: 'report:mrr_trend' });
  assert.is((await authedRequest(app, cookies.admin, '/embeds/revoke', { method: 'POST', body: { id: other.id } })).status, 303);
  assert.is((await open(other.path)).status, 403);
  const audit = await t.db.query(sql`SELECT action FROM audit_log WHERE action LIKE 'embed.%' ORDER BY id`);
  assert.ok(audit.filter((a) => a.action === 'embed.revoke').length === 2);
});

test('a dashboard link renders its tiles alone; tile data follows the locked state', async () => {
  const link = await makeLink('manager', { resource: 'dashboard:executive_overview', locked: 'period=6m', free: 'plan' });
  const res = await open(link.path);
  assert.is(res.status, 200);
  const body = await res.text();
  const d = JSON.parse(readFileSync('views/dashboards/executive_overview.json', 'utf8'));
  const tiles = [...body.matchAll(/<mq-chart class="tile[^"]*" report="([a-z0-9_]+)"/g)].map((m) => m[1]);
  assert.equal(tiles, d.tiles.map((x: any) => x.report));
  assert.match(body, /src="\/embed\/dashboards\/executive_overview\/data\/0\?t=/);
  const q = `t=${encodeURIComponent(link.token)}`;
  const first = await open(`/embed/dashboards/executive_overview/data/0?${q}&plan=premium`);
  assert.is(first.status, 200);
  const json = await first.json();
  assert.is(json.id, d.tiles[0].report);
  assert.is((await open(`/embed/dashboards/executive_overview/data/${tiles.length}?${q}`)).status, 403, 'no such tile');
  assert.is((await open(`/embed/dashboards/executive_overview/data/0?${q}&period=24m`)).status, 403, 'locked period');
  assert.is((await open(`/embed/dashboards/executive_overview?${q}&country=US`)).status, 403, 'not freed');
});

test('bad input names the field and writes nothing; a role that may not see the resource cannot share it', async () => {
  const before = (await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM embed_links`))!.n;
  const cases: [Record<string, string>, string][] = [
    [{ resource: 'report:mrr_trend', days: '8' }, 'days'],
    [{ resource: 'report:mrr_trend', days: '0' }, 'days'],
    [{ resource: 'report:mrr_trend', locked: 'nope=1' }, 'locked'],
    [{ resource: 'report:mrr_trend', locked: 'from=2026-13' }, 'locked'],
    [{ resource: 'report:mrr_trend', free: 'to', locked: 'to=2026-02' }, 'free'],
    [{ resource: 'report:mrr_trend', origin: 'https://a.example.com/path' }, 'origin'],
    [{ resource: 'report:no_such_report' }, 'resource'],
    [{ resource: 'dashboard:executive_overview', locked: 'period=5y' }, 'locked'],
    [{ resource: '' }, 'resource'],
  ];
  for (const [body, fieldName] of cases) {
    const res = await authedRequest(app, cookies.manager, '/embeds', { method: 'POST', body });
    assert.is(res.status, 400, JSON.stringify(body));
    assert.match(await res.text(), new RegExp(`id="f-${fieldName}-error"`), JSON.stringify(body));
  }
  assert.is((await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM embed_links`))!.n, before);
  assert.is((await authedRequest(app, cookies.analyst, '/embeds', { method: 'POST', body: { resource: 'report:mrr_trend' } })).status, 403);
  // a link stops when its creator can no longer see: disabled creator
  const link = await makeLink('manager2', { resource: 'report:mrr_trend' });
  await t.db.query(sql`UPDATE users SET status = 'disabled' WHERE id = ${ids.manager2}`);
  assert.is((await open(link.path)).status, 403);
});

test('without MARQUEE_EMBED_KEYS, instances starting together make and share one key', async () => {
  const fresh = await createDatabase({ label: 'embed_keys' });
  const dbs = [fresh.db, createDb(fresh.url, { max: 2 }), createDb(fresh.url, { max: 2 })];
  try {
    const keys = await Promise.all(dbs.map((db) => embedKeys({ db, config: defaultConfig() })));
    for (const k of keys) assert.equal(k, keys[0]);
    assert.is(keys[0].length, 1);
    assert.is(keys[0][0].secret.length, 32);
    assert.is((await fresh.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM embed_keys`))!.n, 1);
  } finally {
    await Promise.all(dbs.slice(1).map((db) => db.close()));
    await fresh.drop();
  }
});

test('html-validate finds nothing on the embed pages, the links page with a new link, and its error answer', async () => {
  const config = JSON.parse(readFileSync('.htmlvalidate.json', 'utf8'));
  delete config.$schema;
  const validator = new HtmlValidate(config);
  const link = await makeLink('admin', { resource: 'dashboard:executive_overview', free: 'period,plan,from' });
  const pages: [string, Response][] = [
    ['report embed', await open(report.path)],
    ['dashboard embed', await open(link.path)],
    ['links page', await authedRequest(app, cookies.admin, `/embeds?created=${link.id}`)],
    ['links page, 400', await authedRequest(app, cookies.admin, '/embeds', { method: 'POST', body: { resource: 'report:mrr_trend', days: '9' } })],
    ['new API token', await authedRequest(app, cookies.admin, '/account/tokens', { method: 'POST', body: { name: 'validator', days: '30' } })],
    ['API token, 400', await authedRequest(app, cookies.admin, '/account/tokens', { method: 'POST', body: { name: '', days: '0' } })],
  ];
  const problems: string[] = [];
  for (const [label, res] of pages) {
    assert.ok(res.status < 500, `${label}: ${res.status}`);
    const report = await validator.validateString(await res.text(), label);
    for (const r of report.results) for (const m of r.messages) problems.push(`${label}:${m.line}:${m.column} ${m.ruleId}: ${m.message}`);
  }
  assert.equal(problems, []);
});

test.run();
