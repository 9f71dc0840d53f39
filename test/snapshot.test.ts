// Static snapshots (server/sharing/snapshot.ts) over a small simulated business: a dashboard's file holds every
// chart tile as server-drawn SVG (KPI tiles as their value, as on the page), its data tables, the filters and the
// as-of, and no script; every dashboard and report page answers its snapshot exactly as it answers the page, role by
// role; bad paths are 400s naming the path;
// the share links on the pages; `npm run snapshot` writes the same file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { loadDashboards, type Dashboard } from '../server/dashboards/catalog.ts';
import { ROLES } from '../server/auth/access.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { insertSimulatorTitles } from './fixtures/simulate-titles.ts';
import { kpiOf } from '../views/report-data.ts';
import { HtmlValidate } from 'html-validate';

const t = useDatabase(test);
const NOW = new Date('2026-11-26T09:00:00Z');
let app: ReturnType<typeof createApp>;
let catalog: Catalog;
let dashboards: Map<string, Dashboard>;
const cookies: Record<string, string> = { anonymous: '' };
const get = (who: string, url: string) => authedRequest(app, cookies[who], url, { redirect: 'manual' });
const snapshotUrl = (p: string) => `/snapshot?path=${encodeURIComponent(p)}`;
const count = (s: string, re: RegExp) => s.match(re)?.length ?? 0;
const isKpi = (report: string) => !!kpiOf(catalog.reports.get(report)!.spec);

test.before(async () => {
  await insertSimulatorTitles(t.db);
  await runSimulation(t.db, parseArgs(['--users', '300', '--seed', '19', '--end', '2026-11-26', '--quiet']));
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const r = await refreshMarts(t.db, catalog);
  assert.equal(r.results.filter((x) => !x.ok), []);
  dashboards = loadDashboards(undefined, catalog);
  // one dashboard only admins may open: the snapshot must refuse it to everyone else, like the page
  const exec = dashboards.get('executive_overview')!;
  dashboards.set('admins_only', { ...exec, id: 'admins_only', title: 'Admins only', roles: ['admin'] });
  app = createApp({ db: t.db, catalog, dashboards, now: () => NOW, log: () => {} });
  for (const role of ROLES) cookies[role] = await sessionCookie(t.db, (await createUser(t.db, { role })).id, { now: NOW });
});

test('a dashboard snapshot: every tile as SVG, its tables, filters and as-of stamped, no script, a download', async () => {
  const p = '/dashboards/executive_overview?from=2026-01&to=2026-10&plan=premium';
  const res = await get('manager', snapshotUrl(p));
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/html/);
  assert.match(res.headers.get('content-disposition')!, /^attachment; filename="executive_overview_from-2026-01_to-2026-10_plan-premium\.html"$/);
  const html = await res.text();
  const d = dashboards.get('executive_overview')!;
  const kpis = d.tiles.filter((tile) => isKpi(tile.report)).length;
  assert.ok(kpis > 0 && kpis < d.tiles.length, 'the dashboard has KPI and chart tiles');
  assert.is(count(html, /<figure><svg /g), d.tiles.length - kpis, 'a server-drawn SVG per chart tile');
  assert.is(count(html, /<figure class="kpi"><div class="value">/g), kpis, 'a value per KPI tile, as on the page');
  assert.is(count(html, /<section class="tile span-\d">/g), d.tiles.length);
  assert.is(count(html, /<table>/g) + count(html, /No rows for these parameters/g), d.tiles.length, 'a data table per tile');
  for (const tile of d.tiles) assert.ok(html.includes(`<h2>${catalog.reports.get(tile.report)!.title}</h2>`), tile.report);
  assert.not.match(html, /<script/i);
  assert.not.match(html, /\son[a-z]+\s*=/i, 'no event-handler attributes');
  assert.not.match(html, /<(link|img|iframe|object)\b/i, 'self-contained: nothing loaded from elsewhere');
  assert.match(html, /<style>[^<]*@media print/);
  assert.match(html, /<dt>Period<\/dt><dd>Custom range: 2026-01 to 2026-10<\/dd>/);
  assert.match(html, /<dt>Plans<\/dt><dd>[^<]*Premium/i);
  assert.match(html, /<dt>Data as of<\/dt><dd><time datetime="2026-/);
  assert.match(html, /<dt>Snapshot taken<\/dt><dd><time datetime="2026-11-26T09:00:00.000Z">/);
  // the data is real: the MRR tile's table shows the premium plan's months, with numbers
  assert.match(html, /<td>2026-0\d/);
  // valid HTML by the rules the pages are held to (.htmlvalidate.json)
  const config = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '..', '.htmlvalidate.json'), 'utf8'));
  delete config.$schema;
  const report = await new HtmlValidate(config).validateString(html, 'snapshot');
  assert.equal(report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`)), []);
});

test('every dashboard and report: the snapshot answers as the page does, for anonymous and every role', async () => {
  const paths = [...[...dashboards.keys()].map((id) => `/dashboards/${id}`), ...[...catalog.reports.keys()].map((id) => `/reports/${id}`)];
  const mismatches: string[] = [];
  let rendered = 0;
  for (const who of ['anonymous', ...ROLES]) {
    for (const p of paths) {
      const pageRes = await get(who, p);
      const snapRes = await get(who, snapshotUrl(p));
      const page = pageRes.status, snap = snapRes.status;
      const body = await snapRes.text();
      await pageRes.arrayBuffer();
      const same = page === 200 ? snap === 200 : page === 303 ? snap === 303 && snapRes.headers.get('location')!.startsWith('/login?next=') : snap === page;
      if (!same) mismatches.push(`${who} ${p}: page ${page}, snapshot ${snap} ${body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 200)}`);
      if (snap === 200) {
        rendered++;
        assert.not.match(body, /<script/i, p);
        if (p.startsWith('/reports/')) assert.is(count(body, isKpi(p.slice(9)) ? /<figure class="kpi">/g : /<figure><svg /g), 1, p);
      }
    }
  }
  assert.equal(mismatches, []);
  // every staff role sees each dashboard and report its declaration allows it (subscribers and visitors: none)
  const allowed = ROLES.reduce((n, role) => n + [...dashboards.values()].filter((d) => d.roles.includes(role)).length
    + [...catalog.reports.values()].filter((r) => (r.roles as string[]).includes(role)).length, 0);
  assert.ok(allowed > paths.length, 'more than one role sees pages');
  assert.is(rendered, allowed, 'every page a role may open is snapshotted for it');
});

test('the pages link their snapshot (and digests for managers and admins) with their current filters', async () => {
  const page = await (await get('analyst', '/dashboards/executive_overview?period=6m')).text();
  assert.ok(page.includes(`href="${snapshotUrl('/dashboards/executive_overview?period=6m')}"`), 'dashboard snapshot link');
  assert.not.ok(page.includes('href="/digests'), 'analysts do not subscribe to digests');
  const report = await (await get('manager', '/reports/mrr_trend?from=2026-03')).text();
  assert.ok(report.includes(`href="${snapshotUrl('/reports/mrr_trend?from=2026-03')}"`), 'report snapshot link');
  assert.ok(report.includes(`href="/digests?path=${encodeURIComponent('/reports/mrr_trend?from=2026-03')}"`), 'digest link');
});

test('bad snapshot requests are 4xx naming what is wrong', async () => {
  const cases: [string, number, RegExp][] = [
    ['/snapshot', 400, /path is required/],
    [snapshotUrl("/admin/users"), 400, /path must be \/dashboards\/&lt;id&gt; or \/reports\/&lt;id&gt;/],
    [snapshotUrl('https://evil.example/dashboards/x'), 400, /path must be/],
    [snapshotUrl('//evil.example/dashboards/x'), 400, /path must be/],
    [snapshotUrl('/dashboards/nope'), 404, /No dashboard (&quot;|")nope/],
    [snapshotUrl('/reports/nope'), 404, /nope/],
    [snapshotUrl('/dashboards/executive_overview?plan=gold'), 400, /plan must be one of/],
    [snapshotUrl('/reports/mrr_trend?from=2026-13'), 400, /from/],
  ];
  for (const [url, status, message] of cases) {
    const res = await get('admin', url);
    const text = await res.text();
    assert.is(res.status, status, `${url}: ${text.slice(0, 200)}`);
    assert.match(text, message, url);
  }
});

test('npm run snapshot writes the file; a bad path exits 2 with the reason', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-snapshot-'));
  const out = path.join(dir, 'overview.html');
  const env = { ...process.env, DATABASE_URL: t.url };
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'server/sharing/snapshot-cli.ts', ...args],
    { cwd: path.resolve(import.meta.dirname, '..'), env, encoding: 'utf8' });
  const ok = run('/dashboards/executive_overview?from=2026-01', '--out', out);
  assert.is(ok.status, 0, ok.stderr);
  const html = fs.readFileSync(out, 'utf8');
  assert.is(count(html, /<figure><svg /g) + count(html, /<figure class="kpi">/g), dashboards.get('executive_overview')!.tiles.length);
  assert.not.match(html, /<script/i);
  assert.match(ok.stderr, /\/dashboards\/executive_overview\?from=2026-01 → .*overview\.html/);
  const bad = run('/admin/users', '--out', out);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /path must be \/dashboards\/<id> or \/reports\/<id>/);
  const noOut = run('/reports/mrr_trend');
  assert.is(noOut.status, 2);
  assert.match(noOut.stderr, /--out FILE is required/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
