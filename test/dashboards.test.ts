// Dashboards without a browser: the declarative files against the real report catalog, the URL as the state
// (canonical redirects, relative periods, fixed months, bad input naming the field), tile params, role checks,
// the no-JS filter form, security headers and CSP, the theme toggle, and compressed long-cached bundles.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useDatabase } from './helpers/db.ts';
import { createUser, loginAs, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog } from '../server/reports/engine.ts';

const catalog = loadCatalog();
const getCatalog = () => catalog;

const FIXTURE_REPORTS = path.resolve(import.meta.dirname, 'fixtures', 'reports', 'basic');
import { loadDashboards, checkAgainstReports, DashboardError } from '../server/dashboards/catalog.ts';
import { parseState, toQuery, resolvePeriod, tileQuery, FilterError, type Filter, type PeriodFilter } from '../views/filters.ts';
import { loadManifest } from '../server/assets.ts';
import { chartFromLine } from '../server/reports/chart.ts';
import { kpiOf, describe, formatValue, formatChange } from '../views/report-data.ts';
import { ensureBuilt } from '../views/build.ts';

const t = useDatabase(test);
const NOW = new Date('2026-11-26T09:00:00Z');
let app: ReturnType<typeof createApp>;
let manager: string, analyst: string, subscriber: string;

test.before(async () => {
  await ensureBuilt();
  app = createApp({ db: t.db, now: () => NOW, log: () => {} });
  const m = await createUser(t.db, { role: 'manager' });
  const a = await createUser(t.db, { role: 'analyst' });
  const s = await createUser(t.db, { role: 'subscriber' });
  manager = await loginAs(app, m.email, m.password);
  analyst = await loginAs(app, a.email, a.password);
  subscriber = await loginAs(app, s.email, s.password);
});

const get = (cookie: string, url: string, headers: Record<string, string> = {}) => authedRequest(app, cookie, url, { headers, redirect: 'manual' });
const period: PeriodFilter = { name: 'period', type: 'period', default: '12m' };
const FILTERS: Filter[] = [period, { name: 'plan', type: 'multi', options: [['standard_with_ads', 'Ads'], ['standard', 'Std'], ['premium', 'Prem']] }];

test('every shipped dashboard is valid against the real report catalog', () => {
  const dashboards = loadDashboards(undefined, getCatalog());
  for (const id of ['executive_overview', 'revenue_payments', 'growth_retention', 'content_catalog', 'engagement_funnel']) {
    assert.ok(dashboards.has(id), `missing dashboard ${id}`);
  }
  for (const d of dashboards.values()) assert.equal(checkAgainstReports(d, getCatalog().reports), [], d.id);
});

test('dashboard files: each problem is reported with the file and the reason', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-dash-'));
  try {
    fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({
      title: 'Bad', roles: ['manager', 'subscriber'], columns: 6,
      filters: [{ type: 'period', default: '5m' }, { name: 'plan', type: 'multi' }],
      tiles: [{ report: 'no_such_report', size: 9 }, { report: 'mrr_trend', params: { nope: '1' } }],
    }));
    fs.writeFileSync(path.join(dir, 'broken.json'), '{ "title": ');
    let err: DashboardError | undefined;
    try { loadDashboards(dir, getCatalog()); } catch (e) { err = e as DashboardError; }
    assert.instance(err, DashboardError);
    const text = err!.problems.join('\n');
    for (const expected of ['bad.json: "roles"', 'bad.json: "columns"', 'period default', 'tiles[0]: "size"',
      'tiles[0]: unknown report "no_such_report"', 'tiles[1]: report mrr_trend has no parameter "nope"', 'broken.json: invalid JSON']) {
      assert.ok(text.includes(expected), `expected "${expected}" in:\n${text}`);
    }
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('filters: canonical query omits defaults, keeps declared order, and round-trips', () => {
  const q = (s: string) => toQuery(parseState(new URLSearchParams(s), FILTERS, NOW), FILTERS);
  assert.is(q(''), '');
  assert.is(q('period=12m'), '');
  assert.is(q('period=6m&from=&to=&plan=premium&plan=standard_with_ads'), 'period=6m&plan=standard_with_ads&plan=premium');
  assert.is(q('plan=premium&from=2026-01&to=2026-03'), 'from=2026-01&to=2026-03&plan=premium');
  // The plain form sends the months shown for the relative period: they keep it relative.
  assert.is(q('period=6m&from=2026-06&to=2026-11'), 'period=6m');
  assert.is(q('period=6m&from=2026-05&to=2026-11'), 'from=2026-05&to=2026-11');
  for (const [bad, field] of [['from=2026-13', 'from'], ['to=26-01', 'to'], ['period=2w', 'period'], ['plan=gold', 'plan'],
    ['from=2026-05&to=2026-01', 'from'], ['colour=red', 'colour']] as const) {
    try { parseState(new URLSearchParams(bad), FILTERS, NOW); assert.unreachable(bad); } catch (e) {
      assert.instance(e, FilterError, bad);
      assert.is((e as FilterError).field, field, bad);
    }
  }
});

test('filters: relative periods end with the current month; tile params follow what each report accepts', () => {
  const r = (p: string) => resolvePeriod(parseState(new URLSearchParams(p), FILTERS, NOW), period, NOW);
  assert.equal([r('').from, r('').to], ['2025-12', '2026-11']);
  assert.equal([r('period=3m').from, r('period=3m').to], ['2026-09', '2026-11']);
  assert.equal([r('period=ytd').from, r('period=ytd').to], ['2026-01', '2026-11']);
  assert.equal([r('from=2024-02').from, r('from=2024-02').to], ['2024-02', '2026-11']);
  assert.equal([r('to=2025-03').from, r('to=2025-03').to], ['2024-04', '2025-03']);
  const state = parseState(new URLSearchParams('period=3m&plan=premium'), FILTERS, NOW);
  assert.is(tileQuery(['from', 'to', 'plan', 'country'], {}, state, FILTERS, NOW), 'from=2026-09&plan=premium&to=2026-11');
  // Relative period: a KPI tile keeps its report's own month default (this month for stocks, the last complete
  // month for flows); fixed months: the range's last month.
  assert.is(tileQuery(['month', 'plan'], {}, state, FILTERS, NOW), 'plan=premium');
  const fixedRange = parseState(new URLSearchParams('from=2026-03&to=2026-06'), FILTERS, NOW);
  assert.is(tileQuery(['month'], {}, fixedRange, FILTERS, NOW), 'month=2026-06');
  // A filter the report does not declare never changes its query (so it is not refetched).
  assert.is(tileQuery(['type', 'limit'], { limit: '15' }, state, FILTERS, NOW), 'limit=15');
  assert.is(tileQuery(['from', 'to', 'plan'], { plan: 'standard' }, state, FILTERS, NOW), 'from=2026-09&plan=standard&to=2026-11');
});

test("KPI tiles recognise the engine's kpi charts; summaries describe what a chart shows", () => {
  assert.equal(kpiOf(chartFromLine('kpi value=mrr delta=change_ratio format=currency')), { value: 'mrr', delta: 'change_ratio', format: 'currency' });
  assert.equal(kpiOf(chartFromLine('kpi value=customer_churn_rate format=percent')), { value: 'customer_churn_rate', delta: undefined, format: 'percent' });
  for (const id of getCatalog().reports.keys()) {
    const r = getCatalog().reports.get(id)!;
    assert.is(!!kpiOf(r.spec), id.startsWith('kpi_'), `${id}: KPI tile iff a kpi report`);
  }
  assert.is(formatValue(7120.19, 'currency'), '$7,120.19');
  assert.is(formatValue(0.083, 'percent'), '8.3%');
  assert.is(formatChange(0.021), '+2.1 %');
  assert.is(formatChange(-0.005), '−0.5 %');
  const spec = chartFromLine('line x=month:T y=mrr:Q');
  const text = describe(spec, [{ month: '2026-01-01', mrr: 10 }, { month: '2026-02-01', mrr: 30 }], 'MRR');
  assert.is(text, 'Line chart of MRR: mrr by month; 2 data rows. month from 2026-01-01 to 2026-02-01. mrr ranges from 10 to 30.');
  assert.is(describe(spec, [], 'MRR'), 'Line chart of MRR: no data for these filters.');
});

test('GET /dashboards lists the dashboards with their reports for staff; others are refused', async () => {
  const res = await get(manager, '/dashboards');
  assert.is(res.status, 200);
  const body = await res.text();
  for (const title of ['Executive overview', 'Revenue &amp; payments', 'Growth &amp; retention', 'Content catalog', 'Engagement &amp; funnel']) {
    assert.ok(body.includes(title), title);
  }
  assert.match(body, /href="\/reports\/mrr_trend"/);
  assert.is((await get(subscriber, '/dashboards')).status, 403);
  assert.is((await get(subscriber, '/dashboards/executive_overview')).status, 403);
  const anon = await app.request('/dashboards/executive_overview?period=6m', { redirect: 'manual' });
  assert.is(anon.status, 303);
  assert.is(anon.headers.get('location'), `/login?next=${encodeURIComponent('/dashboards/executive_overview?period=6m')}`);
  assert.is((await get(manager, '/dashboards/no_such_dashboard')).status, 404);
});

test('GET /dashboards/:id renders every tile as <mq-chart report> with params from the URL', async () => {
  const res = await get(analyst, '/dashboards/executive_overview?period=3m&plan=premium');
  assert.is(res.status, 200);
  const body = await res.text();
  const d = loadDashboards().get('executive_overview')!;
  const tiles = [...body.matchAll(/<mq-chart class="tile size-(\d)" report="([a-z0-9_]+)"\s+params="([^"]*)"\s+accepts="([^"]*)"/g)];
  assert.equal(tiles.map((m) => m[2]), d.tiles.map((x) => x.report));
  for (const [, , report, params, accepts] of tiles) {
    const p = new URLSearchParams(params.replace(/&amp;/g, '&'));
    const declared = getCatalog().reports.get(report)!.params.map((x) => x.name);
    assert.is(accepts, declared.join(' '), report);
    if (declared.includes('from')) assert.is(p.get('from'), '2026-09', report);
    if (declared.includes('plan')) assert.equal(p.getAll('plan'), ['premium'], report);
  }
  // The no-JS form carries the state: chips are links, months show the period, the checkbox is checked.
  assert.match(body, /<form method="get" action="\/dashboards\/executive_overview"/);
  assert.match(body, /data-period="3m" href="\/dashboards\/executive_overview\?period=3m&amp;plan=premium"\s+aria-current="true"/);
  assert.match(body, /name="from" value="2026-09"/);
  assert.match(body, /value="premium"\s+checked/);
  // No inline script and no on* handler attributes (the CSP would refuse them).
  assert.not.match(body, /<script(?![^>]*\bsrc=)[^>]*>/);
  assert.not.match(body, /\son[a-z]+=/i);
});

test("a dashboard's roles decide who sees it; tiles whose report the role may not run are left out", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-dash-'));
  try {
    fs.writeFileSync(path.join(dir, 'board_for_admins.json'), JSON.stringify({ title: 'Admins only', roles: ['admin'], tiles: [{ report: 'mrr_trend' }] }));
    fs.writeFileSync(path.join(dir, 'open_board.json'), JSON.stringify({ title: 'Open board', tiles: [{ report: 'mrr_trend', size: 2 }, { report: 'signups' }] }));
    const boards = createApp({ db: t.db, now: () => NOW, log: () => {}, dashboards: loadDashboards(dir) });
    const get = (cookie: string, url: string) => authedRequest(boards, cookie, url, { redirect: 'manual' });
    const admin = await createUser(t.db, { role: 'admin' });
    const adminCookie = await loginAs(boards, admin.email, admin.password);
    const list = await (await get(manager, '/dashboards')).text();
    assert.ok(list.includes('Open board'));
    assert.not.ok(list.includes('Admins only'));
    assert.is((await get(manager, '/dashboards/board_for_admins')).status, 403);
    assert.match(await (await get(adminCookie, '/dashboards')).text(), /Admins only/);
    const page = await get(adminCookie, '/dashboards/board_for_admins');
    assert.is(page.status, 200);
    assert.match(await page.text(), /report="mrr_trend"/);
    // No filters declared: tiles get only their own params (report defaults apply).
    assert.match(await (await get(manager, '/dashboards/open_board')).text(), /report="signups"\s+params=""/);

    // With a catalog where one report is admin-only, a manager's page leaves that tile out.
    fs.writeFileSync(path.join(dir, 'fixture_board.json'), JSON.stringify({ title: 'Fixture board',
      filters: [{ type: 'period', default: '3m' }], tiles: [{ report: 'fx_admin_only' }, { report: 'fx_monthly' }] }));
    const fixtureApp = createApp({ db: t.db, now: () => NOW, log: () => {}, catalog: loadCatalog(FIXTURE_REPORTS), dashboards: loadDashboards(dir) });
    const tiles = async (cookie: string) => [...(await (await authedRequest(fixtureApp, cookie, '/dashboards/fixture_board')).text())
      .matchAll(/<mq-chart [^>]*report="([a-z_]+)"\s+params="([^"]*)"/g)].map((m) => `${m[1]}?${m[2].replace(/&amp;/g, '&')}`);
    assert.equal(await tiles(manager), ['fx_monthly?from=2026-09&to=2026-11']);
    assert.equal(await tiles(adminCookie), ['fx_admin_only?', 'fx_monthly?from=2026-09&to=2026-11']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('non-canonical dashboard URLs redirect to the canonical one; bad filters answer 400 naming the field', async () => {
  const cases: [string, string][] = [
    ['/dashboards/executive_overview?period=12m&from=&to=', '/dashboards/executive_overview'],
    ['/dashboards/executive_overview?plan=premium&period=6m&from=2026-06&to=2026-11', '/dashboards/executive_overview?period=6m&plan=premium'],
    ['/dashboards/executive_overview?to=2026-03&from=2026-01', '/dashboards/executive_overview?from=2026-01&to=2026-03'],
  ];
  for (const [from, to] of cases) {
    const res = await get(manager, from);
    assert.is(res.status, 302, from);
    assert.is(res.headers.get('location'), to, from);
  }
  const bad = await get(manager, '/dashboards/executive_overview?from=2026-13');
  assert.is(bad.status, 400);
  const text = await bad.text();
  assert.match(text, /<b>from<\/b>/);
  assert.match(text, /from must be a month like 2026-01/);
  assert.is((await get(manager, '/dashboards/executive_overview?plan=gold')).status, 400);
});

test('security headers and a strict CSP on pages, API errors and 404s', async () => {
  for (const [cookie, url] of [[manager, '/dashboards/executive_overview'], ['', '/healthz'], ['', '/nothing-here'], [manager, '/api/reports/nope']] as const) {
    const res = await get(cookie, url);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/, url);
    assert.not.match(csp, /unsafe-eval|unsafe-inline/, url);
    assert.match(csp, /frame-ancestors 'none'/, url);
    assert.is(res.headers.get('x-content-type-options'), 'nosniff', url);
    assert.is(res.headers.get('x-frame-options'), 'DENY', url);
    assert.ok(res.headers.get('referrer-policy'), url);
    if (cookie) assert.match(res.headers.get('cache-control') ?? '', /no-store|no-cache/, `${url}: a signed-in answer is not cached as is`);
  }
  assert.is((await get(manager, '/dashboards')).headers.get('cache-control'), 'no-store');
});

test('theme: the toggle form works without JavaScript; pages render the choice; auto follows the OS', async () => {
  const res = await authedRequest(app, manager, '/theme', { method: 'POST', body: { theme: 'light', next: '/dashboards?x=1' }, redirect: 'manual' });
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/dashboards?x=1');
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('mq_theme='))!;
  assert.match(cookie, /^mq_theme=light;/);
  const page = async (theme?: string) => (await get(manager + (theme ? `; mq_theme=${theme}` : ''), '/dashboards')).text();
  assert.match(await page('light'), /<html lang="en" data-theme="light">/);
  assert.match(await page(), /<html lang="en" data-theme="dark">/);
  assert.match(await page('auto'), /<html lang="en">/);
  const off = await authedRequest(app, manager, '/theme', { method: 'POST', body: { theme: 'neon', next: 'https://evil.example/' }, redirect: 'manual' });
  assert.is(off.status, 400);
  const evil = await authedRequest(app, '', '/theme', { method: 'POST', body: { theme: 'dark', next: 'https://evil.example/' }, redirect: 'manual' });
  assert.is(evil.headers.get('location'), '/');
});

test('bundles: hashed names, served precompressed (br, gzip) by Accept-Encoding, cached for a year', async () => {
  const manifest = loadManifest();
  const js = manifest['dashboard-page.js'];
  assert.match(js, /^dashboard-page-[A-Z0-9]+\.js$/);
  const url = `/static/build/${js}`;
  const br = await app.request(url, { headers: { 'Accept-Encoding': 'gzip, deflate, br' } });
  assert.is(br.status, 200);
  assert.is(br.headers.get('content-encoding'), 'br');
  assert.match(br.headers.get('vary') ?? '', /Accept-Encoding/);
  assert.is(br.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.match(br.headers.get('content-type') ?? '', /javascript/);
  const brBytes = Buffer.from(await br.arrayBuffer());
  const plain = await app.request(url);
  assert.is(plain.headers.get('content-encoding'), null);
  const plainText = await plain.text();
  const zlib = await import('node:zlib');
  assert.is(zlib.brotliDecompressSync(brBytes).toString(), plainText);
  const gz = await app.request(url, { headers: { 'Accept-Encoding': 'gzip' } });
  assert.is(gz.headers.get('content-encoding'), 'gzip');
  assert.is(zlib.gunzipSync(Buffer.from(await gz.arrayBuffer())).toString(), plainText);
  // Pages link the hashed CSS and script.
  const body = await (await get(manager, '/dashboards/executive_overview')).text();
  assert.ok(body.includes(`/static/build/${manifest['app.css']}`));
  assert.ok(body.includes(`/static/build/${js}`));
});

test.run();
