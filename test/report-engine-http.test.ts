// The report engine over HTTP (app.request, real sessions): role table + per-report @roles, 400 per field on the API
// and the page, canonical redirects, ETag/304, CSV headers, the server-rendered page, the admin refresh trigger.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { useDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/sync.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/reports/basic');
let catalog: Catalog;
let app: ReturnType<typeof createApp>;
const cookies: Record<string, string> = {};
const get = (role: string, url: string, headers: Record<string, string> = {}) => authedRequest(app, cookies[role], url, { headers });

test.before(async () => {
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g, g FROM generate_series(0, 40) g`);
  catalog = loadCatalog(FIXTURES);
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, now: () => new Date('2026-11-26T09:00:00Z'), log: () => {} });
  for (const role of ['admin', 'analyst', 'manager', 'subscriber'] as const) {
    const u = await createUser(t.db, { role });
    cookies[role] = await sessionCookie(t.db, u.id, { now: new Date('2026-11-26T08:55:00Z') });
  }
  cookies.anonymous = '';
});

test('catalog API lists what the role may run, with typed params', async () => {
  const admin = await (await get('admin', '/api/reports')).json();
  const analyst = await (await get('analyst', '/api/reports')).json();
  const manager = await (await get('manager', '/api/reports')).json();
  assert.ok(admin.reports.some((r: any) => r.id === 'fx_admin_only'));
  assert.not.ok(analyst.reports.some((r: any) => r.id === 'fx_admin_only'));
  assert.not.ok(manager.reports.some((r: any) => r.id === 'fx_plans'));
  const byKind = analyst.reports.find((r: any) => r.id === 'fx_by_kind');
  assert.equal(byKind.params.find((p: any) => p.name === 'min_n'), { name: 'min_n', type: 'int', label: 'min n', default: '0', min: '0', max: '100' });
  assert.is((await get('subscriber', '/api/reports')).status, 403);
  assert.is((await get('anonymous', '/api/reports')).status, 401);
});

test('role enforcement: route table for everyone, @roles per report', async () => {
  assert.is((await get('subscriber', '/api/reports/fx_by_kind')).status, 403);
  assert.is((await get('anonymous', '/api/reports/fx_by_kind')).status, 401);
  const page = await get('anonymous', '/reports/fx_by_kind');
  assert.is(page.status, 303);
  assert.match(page.headers.get('location')!, /^\/login\?next=/);
  const res = await get('analyst', '/api/reports/fx_admin_only');
  assert.is(res.status, 403);
  assert.match((await res.json()).error.message, /may not run the report fx_admin_only/);
  assert.is((await get('analyst', '/api/reports/fx_admin_only.csv')).status, 403);
  assert.is((await get('manager', '/reports/fx_plans')).status, 403);
  assert.is((await get('admin', '/api/reports/fx_admin_only')).status, 200);
  assert.is((await get('analyst', '/api/reports/nope')).status, 404);
  assert.is((await get('analyst', '/api/reports/fx_by_kind.xml')).status, 404);
});

test('API answer: spec with data, canonical params, freshness headers', async () => {
  const res = await get('analyst', '/api/reports/fx_by_kind?kinds=c&kinds=a&min_n=0');
  assert.is(res.status, 200);
  const body = await res.json();
  assert.equal(Object.keys(body).sort(), ['asOf', 'id', 'nextRefresh', 'params', 'query', 'rowCap', 'rowCount', 'spec', 'stale', 'title', 'truncated']);
  assert.is(body.query, 'kinds=a&kinds=c');
  assert.equal(body.params.kinds, ['a', 'c']);
  assert.is(body.spec.data.values.length, body.rowCount);
  assert.ok(body.spec.data.values.every((r: any) => r.kind !== 'b'));
  assert.is(res.headers.get('x-stale'), 'false');
  assert.is(res.headers.get('x-row-cap'), '10000');
  assert.match(res.headers.get('cache-control')!, /private/);
  const rows = await (await get('analyst', '/api/reports/fx_by_kind.json?kinds=c&kinds=a&min_n=0')).json();
  assert.equal(rows, body.spec.data.values);
});

test('parameter errors are 400 with a message per field on the API and the page, never 500', async () => {
  const cases = ['from=2026-02-31', 'min_n=x', 'min_n=1000', 'only_positive=maybe', 'order=1;DROP TABLE users', 'kinds=zzz',
    'from=2026-05-01&to=2026-01-01', 'unknown=1', 'from=a&from=b', 'min_n=%F0%9F%98%80', 'kinds=' + 'a,'.repeat(300)];
  for (const q of cases) {
    for (const suffix of ['', '.json', '.csv']) {
      const res = await get('analyst', `/api/reports/fx_by_kind${suffix}?${q}`);
      assert.is(res.status, 400, `${suffix}?${q}`);
      const err = (await res.json()).error;
      assert.ok(err.fields && Object.keys(err.fields).length, `${q}: ${JSON.stringify(err)}`);
    }
    const page = await get('analyst', `/reports/fx_by_kind?${q}`);
    assert.is(page.status, 400, `page ?${q}`);
    const html = await page.text();
    assert.match(html, /role="alert"/);
    assert.match(html, /<form method="get" action="\/reports\/fx_by_kind"/, 'the form is shown again to fix the value');
  }
  const one = await (await get('analyst', '/api/reports/fx_by_kind?min_n=x&order=up')).json();
  assert.equal(Object.keys(one.error.fields).sort(), ['min_n', 'order']);
});

test('lookup values found are remembered until their table changes; a value gone is refused again', async () => {
  const { code } = (await t.db.one<{ code: string }>('SELECT code FROM plans ORDER BY sort_order LIMIT 1'))!;
  // an app whose database counts the plan lookups it is asked for
  let lookups = 0;
  const counted: typeof t.db = { ...t.db, query: ((q: any, ...rest: any[]) => {
    if (/FROM plans WHERE code = ANY/.test(typeof q === 'string' ? q : q.text)) lookups++;
    return (t.db.query as any)(q, ...rest);
  }) as typeof t.db.query };
  const countingApp = createApp({ db: counted, catalog, now: () => new Date('2026-11-26T09:00:00Z'), log: () => {} });
  for (let i = 0; i < 3; i++) assert.is((await authedRequest(countingApp, cookies.analyst, `/api/reports/fx_plans?plan=${code}`)).status, 200);
  assert.is(lookups, 1, 'one lookup for three requests');
  assert.is((await get('analyst', `/api/reports/fx_plans?plan=${code}`)).status, 200);
  assert.is((await get('analyst', '/api/reports/fx_plans?plan=renamed_plan')).status, 400, 'not (yet) a plan');
  await t.db.query(`UPDATE plans SET code = 'renamed_plan' WHERE code = $1`, [code]);
  try {
    // the change notice drops the remembered values (in this process at once, in others when it arrives)
    await waitFor('the renamed plan to be refused', async () => (await get('analyst', `/api/reports/fx_plans?plan=${code}`)).status === 400);
    const res = await get('analyst', '/api/reports/fx_plans?plan=renamed_plan');
    assert.is(res.status, 200, 'the new code is accepted: values not found are never remembered');
    assert.equal((await res.json()).spec.data.values.map((r: any) => r.code), ['renamed_plan']);
  } finally {
    await t.db.query(`UPDATE plans SET code = $1 WHERE code = 'renamed_plan'`, [code]);
  }
});

test('pages redirect non-canonical query strings to the canonical one', async () => {
  const cases: [string, string][] = [
    ['?min_n=0', ''], ['?to=2026-12-31&from=2026-02-01', '?from=2026-02-01'], ['?kinds=c,a', '?kinds=a&kinds=c'],
    ['?kinds=c&kinds=a&kinds=c', '?kinds=a&kinds=c'], ['?from=&min_n=3', '?min_n=3'], ['?only_positive=1', '?only_positive=true'],
    ['?min_n=007', '?min_n=7'],
  ];
  for (const [from, to] of cases) {
    const res = await get('analyst', `/reports/fx_by_kind${from}`);
    assert.is(res.status, 302, from);
    assert.is(res.headers.get('location'), `/reports/fx_by_kind${to}`, from);
    if (to) assert.is((await get('analyst', `/reports/fx_by_kind${to}`)).status, 200, `${to} is canonical`);
  }
});

test('the report page: title, definition, form, freshness, chart element, data table, exports', async () => {
  const res = await get('analyst', '/reports/fx_by_kind?kinds=a');
  assert.is(res.status, 200);
  const html = await res.text();
  assert.match(html, /<h1>Amount by day and kind<\/h1>/);
  assert.match(html, /Sum of amount per day and kind\./);
  assert.match(html, /<mq-chart report="fx_by_kind" params="kinds=a"><\/mq-chart>/);
  assert.match(html, /Data as of <time datetime="20/);
  assert.match(html, /href="\/api\/reports\/fx_by_kind\.csv\?kinds=a"/);
  assert.match(html, /<option value="a" selected>a<\/option>/);
  assert.match(html, /<input id="p-from" type="date" name="from" value=""/);
  assert.match(html, /default 2026-01-01/);
  assert.match(html, /<td>2026-01-01<\/td><td>a<\/td>/);
  assert.not.match(html, /<script>|onclick=|onload=/i, 'no inline script (strict CSP)');
  assert.not.match(html, /Refresh this report/, 'analysts get no refresh button');
  const live = await (await get('admin', '/reports/fx_monthly')).text();
  assert.match(live, /Live query/);
  assert.match(live, /default 2 months ago \(2026-09\)/);
  const adminPage = await (await get('admin', '/reports/fx_by_kind')).text();
  assert.match(adminPage, /<form method="post" action="\/reports\/refresh"/);
  assert.match(adminPage, /mart_fx_daily/);
  const catalogPage = await (await get('manager', '/reports')).text();
  assert.match(catalogPage, /href="\/reports\/fx_by_kind"/);
  assert.not.match(catalogPage, /fx_admin_only/);
});

test('ETag from report, params and mart generations: 304 until a refresh', async () => {
  const url = '/api/reports/fx_by_kind?kinds=b';
  const first = await get('analyst', url);
  const etag = first.headers.get('etag')!;
  assert.match(etag, /^"[\w-]+-api"$/);
  const again = await get('analyst', url, { 'If-None-Match': etag });
  assert.is(again.status, 304);
  assert.is(await again.text(), '');
  assert.is((await get('analyst', '/api/reports/fx_by_kind?kinds=a', { 'If-None-Match': etag })).status, 200);
  const json = await get('analyst', url.replace('fx_by_kind', 'fx_by_kind.json'));
  assert.ok(json.headers.get('etag') !== etag, 'another representation, another ETag');
  const csv = await get('analyst', url.replace('fx_by_kind', 'fx_by_kind.csv'));
  const csvTag = csv.headers.get('etag')!;
  await csv.text();
  assert.is((await get('analyst', url.replace('fx_by_kind', 'fx_by_kind.csv'), { 'If-None-Match': csvTag })).status, 304);
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('b', '2026-06-01', 1)`);
  assert.is((await get('analyst', url, { 'If-None-Match': etag })).status, 304, 'unchanged until the mart refreshes');
  await refreshMarts(t.db, catalog, { only: ['mart_fx_daily'] });
  const fresh = await get('analyst', url, { 'If-None-Match': etag });
  assert.is(fresh.status, 200);
  assert.ok(fresh.headers.get('etag') !== etag);
});

test('CSV: streamed with the row cap and truncation announced in headers', async () => {
  const res = await get('analyst', '/api/reports/fx_capped.csv?n=50');
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/csv/);
  // named like the tile's PNG/SVG exports (views/export-name.ts): report and filters
  assert.match(res.headers.get('content-disposition')!, /filename="fx_capped_n-50\.csv"/);
  assert.is(res.headers.get('x-row-cap'), '3');
  assert.is(res.headers.get('x-truncated'), 'true');
  assert.is(await res.text(), 'i\r\n1\r\n2\r\n3\r\n');
  const ok = await get('analyst', '/api/reports/fx_capped.csv?n=2');
  assert.is(ok.headers.get('x-truncated'), 'false');
  assert.is(await ok.text(), 'i\r\n1\r\n2\r\n');
  const json = await get('analyst', '/api/reports/fx_capped?n=50');
  assert.is(json.headers.get('x-truncated'), 'true');
  assert.is((await json.json()).rowCount, 3);
});

test('paged report (@pagesize): API answers a page with Link to its neighbours; the page shows Previous / Next; CSV is every page', async () => {
  const first = await get('analyst', '/api/reports/fx_paged');
  const body = await first.json();
  assert.equal([body.page, body.rowCount, body.rowCap, body.truncated, body.spec.data.values], [1, 2, 2, true, [{ i: 1 }, { i: 2 }]]);
  assert.is(first.headers.get('link'), '</api/reports/fx_paged?page=2>; rel="next"');
  const mid = await get('analyst', '/api/reports/fx_paged.json?n=9&page=2');
  assert.equal(await mid.json(), [{ i: 3 }, { i: 4 }]);
  assert.is(mid.headers.get('link'), '</api/reports/fx_paged.json?n=9>; rel="prev", </api/reports/fx_paged.json?n=9&page=3>; rel="next"');
  const last = await get('analyst', '/api/reports/fx_paged?page=3');
  assert.equal([(await last.json()).rowCount, last.headers.get('link'), last.headers.get('x-truncated')], [1, '</api/reports/fx_paged?page=2>; rel="prev"', 'true']);
  const bad = await get('analyst', '/api/reports/fx_paged?page=4');
  assert.equal([bad.status, (await bad.json()).error.fields], [400, { page: 'must be at most 3' }]);
  // the page: rows of this page, links to the others, no page field in the form (Apply starts again at page 1)
  const html = await (await get('analyst', '/reports/fx_paged?page=2')).text();
  assert.match(html, /<a rel="prev" href="\/reports\/fx_paged">‹ Previous<\/a>/);
  assert.match(html, /Page 2 · rows 3–4/);
  assert.match(html, /<a rel="next" href="\/reports\/fx_paged\?page=3">Next ›<\/a>/);
  assert.not.match(html, /name="page"/);
  assert.match(html, /href="\/api\/reports\/fx_paged\.csv" download>CSV \(every page\)/);
  assert.not.match(html, /Capped at/, 'more pages follow: not capped');
  assert.match(await (await get('analyst', '/reports/fx_paged?page=3')).text(), /Capped at 5 rows/, 'the last page within the cap says so');
  assert.is(await (await get('analyst', '/api/reports/fx_paged.csv?page=3')).text(), 'i\r\n1\r\n2\r\n3\r\n4\r\n5\r\n');
});

test('admin refresh: page button and API; others may not', async () => {
  const gen = async () => (await t.db.one(`SELECT generation FROM report_marts WHERE name = 'mart_fx_total'`))!.generation;
  const g0 = await gen();
  const form = await authedRequest(app, cookies.admin, '/reports/refresh', { method: 'POST', body: { report: 'fx_admin_only', next: '/reports/fx_admin_only' } });
  assert.is(form.status, 303);
  assert.is(form.headers.get('location'), '/reports/fx_admin_only');
  assert.is(await gen(), g0 + 1);
  const api = await authedRequest(app, cookies.admin, '/api/marts/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ marts: ['mart_fx_daily'] }) });
  assert.is(api.status, 200);
  assert.equal((await api.json()).results.map((r: any) => r.mart), ['mart_fx_daily', 'mart_fx_total'], 'with the marts that read it');
  const bad = await authedRequest(app, cookies.admin, '/api/marts/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"marts":["mart_x"]}' });
  assert.is(bad.status, 400);
  for (const role of ['analyst', 'manager']) {
    assert.is((await authedRequest(app, cookies[role], '/reports/refresh', { method: 'POST', body: {} })).status, 403);
    assert.is((await authedRequest(app, cookies[role], '/api/marts/refresh', { method: 'POST' })).status, 403);
  }
  const status = await (await get('analyst', '/api/marts')).json();
  assert.equal(status.marts.map((m: any) => m.name), ['mart_fx_daily', 'mart_fx_total']);
  assert.ok(status.history.length >= 4);
});

test.run();
