// A manager in Chromium against the real server, report engine and reports over a small simulated business:
// every dashboard renders every chart (SVG or canvas; KPI tiles their value) with no console error (CSP violations
// included); a filter change updates the URL and only the affected tiles; reload restores the view; back works;
// CSV export returns the tile's rows; PNG/SVG export download; the layout holds at 1280 and 390 px; light theme.
// Screenshots go to test/artifacts/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, Page } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser } from '../helpers/auth.ts';
import { loadDashboardData } from '../fixtures/dashboard-data.ts';
import { loadDashboards } from '../../server/dashboards/catalog.ts';
import { loadCatalog } from '../../server/reports/engine.ts';
import { ensureBuilt } from '../../views/build.ts';

const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
let page: Page;
let errors: string[];
const DASHBOARDS = [...loadDashboards().values()];

test.before(async () => {
  await ensureBuilt();
  await loadDashboardData(t.db);
  server = await startTestServer({ db: t.db });
  const manager = await createUser(t.db, { role: 'manager' });
  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await ctx.newPage();
  errors = watchErrors(page);
  page.on('console', (m) => { if (m.type() === 'warning' && /Content.Security.Policy/i.test(m.text())) errors.push(m.text()); });
  await page.goto(`${server.url}/login?next=/dashboards`);
  await page.fill('input[name=email]', manager.email);
  await page.fill('input[name=password]', manager.password);
  await Promise.all([page.waitForURL(/\/dashboards$/), page.press('input[name=password]', 'Enter')]);
});

test.after(async () => {
  await browser?.close();
  await server?.close();
});

/** Waits until no tile is loading; returns report:state:drawn for each tile. */
async function settled(p: Page = page) {
  await p.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('mq-chart')];
    return tiles.length > 0 && tiles.every((e) => e.getAttribute('state') === 'ready' || e.getAttribute('state') === 'error');
  }, null, { timeout: 20_000 });
  return p.$$eval('mq-chart', (els) => els.map((e) => {
    const root = e.shadowRoot!;
    const drawn = !!root.querySelector('.vega svg, .vega canvas') || !!root.querySelector('mq-kpi')?.shadowRoot?.querySelector('.value');
    const error = root.querySelector('.error')?.textContent ?? '';
    return { report: e.getAttribute('report')!, params: e.getAttribute('params')!, accepts: (e.getAttribute('accepts') ?? '').split(' '), state: e.getAttribute('state')!, drawn, error };
  }));
}

function assertAllDrawn(tiles: Awaited<ReturnType<typeof settled>>, where: string) {
  for (const tile of tiles) {
    assert.is(tile.state, 'ready', `${where}: ${tile.report} is ${tile.state}: ${tile.error}`);
    assert.ok(tile.drawn, `${where}: ${tile.report} drew no SVG/canvas/KPI value`);
  }
}

test('every dashboard renders every chart without console errors, at 1280 and 390 px', async () => {
  for (const d of DASHBOARDS) {
    // Load at 1280 px, then narrow the same page to 390 px: the grid reflows and the charts follow their tiles.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${server.url}/dashboards/${d.id}`);
    for (const width of [1280, 390]) {
      if (width !== 1280) {
        await page.setViewportSize({ width, height: 900 });
        await page.waitForFunction((w) => [...document.querySelectorAll('mq-chart')].every((e) => {
          const svg = e.shadowRoot!.querySelector('.vega svg');
          return !svg || svg.getBoundingClientRect().right <= w;
        }), width, { timeout: 10_000 });
      }
      const tiles = await settled();
      assert.equal(tiles.map((x) => x.report), d.tiles.map((x) => x.report), d.id);
      assertAllDrawn(tiles, `${d.id}@${width}`);
      assert.equal(errors, [], `${d.id}@${width}: console errors`);
      // Layout: nothing wider than the viewport; one column on a phone, several side by side on a desktop.
      const layout = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        boxes: [...document.querySelectorAll('mq-chart')].map((e) => { const r = e.getBoundingClientRect(); return { x: Math.round(r.x), right: r.right, w: r.width }; }),
      }));
      assert.ok(layout.scroll <= width, `${d.id}@${width}: page is ${layout.scroll}px wide`);
      for (const b of layout.boxes) assert.ok(b.right <= width && b.w > 0, `${d.id}@${width}: a tile overflows (${JSON.stringify(b)})`);
      const columns = new Set(layout.boxes.map((b) => b.x)).size;
      if (width === 390) assert.is(columns, 1, `${d.id}@390: ${columns} columns`);
      else assert.ok(columns >= 2, `${d.id}@1280: only one column`);
      await screenshot(page, `dashboard-${d.id}-${width}`);
    }
  }
});

test('a filter change updates the URL and only affected tiles; reload restores it; back returns', async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  const base = `${server.url}/dashboards/executive_overview`;
  await page.goto(base);
  const before = await settled();
  // Count the fetches of report data caused by the filter change.
  const fetched: string[] = [];
  const onRequest = (r: { url(): string }) => { const u = new URL(r.url()); if (u.pathname.startsWith('/api/reports/')) fetched.push(u.pathname.slice('/api/reports/'.length)); };
  page.on('request', onRequest);
  await page.click('a[data-period="3m"]');
  await page.waitForURL(`${base}?period=3m`);
  const after = await settled();
  page.off('request', onRequest);
  assertAllDrawn(after, 'after 3m');
  const changed = after.filter((x, i) => x.params !== before[i].params).map((x) => x.report);
  assert.equal(fetched.sort(), [...changed].sort(), 'only tiles whose params changed refetch');
  const trend = after.find((x) => x.report === 'mrr_trend')!;
  const to = new URLSearchParams(trend.params).get('to')!;
  assert.is(new URLSearchParams(trend.params).get('from'), monthsBefore(to, 2));

  // A plan checkbox: tiles whose report takes a plan get it; the others keep their query.
  await page.check('input[name=plan][value=premium]');
  await page.waitForURL(`${base}?period=3m&plan=premium`);
  const withPlan = await settled();
  assertAllDrawn(withPlan, 'with plan');
  for (const x of withPlan) {
    assert.is(new URLSearchParams(x.params).getAll('plan').join(), x.accepts.includes('plan') ? 'premium' : '', x.report);
  }

  // Reload: the URL alone restores the view (chip, checkbox, tile params).
  await page.reload();
  const reloaded = await settled();
  assert.equal(reloaded.map((x) => x.params), withPlan.map((x) => x.params));
  assert.is(await page.getAttribute('a[data-period="3m"]', 'aria-current'), 'true');
  assert.ok(await page.isChecked('input[name=plan][value=premium]'));

  // Back: the previous state (3 months, no plan), form and tiles alike.
  await page.goBack();
  await page.waitForURL(`${base}?period=3m`);
  const back = await settled();
  assert.equal(back.map((x) => x.params), after.map((x) => x.params));
  assert.not.ok(await page.isChecked('input[name=plan][value=premium]'));
  await page.goBack();
  await page.waitForURL(base);
  assert.equal((await settled()).map((x) => x.params), before.map((x) => x.params));

  // Growth & retention: the cohort tiles take no plan, so checking one refetches only the other tiles.
  await page.goto(`${server.url}/dashboards/growth_retention`);
  const g0 = await settled();
  const fetchedG: string[] = [];
  const onRequestG = (r: { url(): string }) => { const u = new URL(r.url()); if (u.pathname.startsWith('/api/reports/')) fetchedG.push(u.pathname.slice('/api/reports/'.length)); };
  page.on('request', onRequestG);
  await page.check('input[name=plan][value=standard]');
  await page.waitForURL(/\/dashboards\/growth_retention\?plan=standard$/);
  const g1 = await settled();
  page.off('request', onRequestG);
  assertAllDrawn(g1, 'growth with plan');
  const takesPlan = g1.filter((x) => x.accepts.includes('plan')).map((x) => x.report);
  assert.ok(takesPlan.length > 0 && takesPlan.length < g1.length, 'some growth tiles take a plan, some do not');
  assert.equal(fetchedG.sort(), [...takesPlan].sort());
  for (const [i, x] of g1.entries()) if (!x.accepts.includes('plan')) assert.is(x.params, g0[i].params, x.report);

  // Content catalog (no period): a content type checkbox; tiles without a type parameter keep their query.
  await page.goto(`${server.url}/dashboards/content_catalog`);
  const c0 = await settled();
  await page.check('input[name=type][value=Movie]');
  await page.waitForURL(/\/dashboards\/content_catalog\?type=Movie$/);
  const c1 = await settled();
  assertAllDrawn(c1, 'catalog with type');
  for (const [i, x] of c1.entries()) {
    assert.is(new URLSearchParams(x.params).getAll('type').join(), x.accepts.includes('type') ? 'Movie' : '', x.report);
    if (!x.accepts.includes('type')) assert.is(x.params, c0[i].params, x.report);
  }

  // Fixed months through the month inputs.
  await page.goto(base);
  await settled();
  await page.fill('input[name=from]', '2026-01');
  await page.dispatchEvent('input[name=from]', 'change');
  await page.waitForURL(/from=2026-01/);
  assertAllDrawn(await settled(), 'fixed months');
  assert.equal(errors, []);
  await screenshot(page, 'dashboard-executive_overview-filtered');
});

test('CSV export returns the rows of the tile; the table view shows them; PNG and SVG download', async () => {
  await page.goto(`${server.url}/dashboards/executive_overview?period=6m`);
  await settled();
  const tile = page.locator('mq-chart[report=mrr_trend]');
  const href = await tile.locator('a', { hasText: 'CSV' }).getAttribute('href');
  assert.match(href!, /^\/api\/reports\/mrr_trend\.csv\?/);
  const csv = await (await page.request.get(server.url + href!)).text();
  const lines = csv.trim().split(/\r?\n/);
  const json = await (await page.request.get(server.url + href!.replace('.csv', ''))).json();
  assert.is(lines.length - 1, json.rowCount, 'CSV rows = report rows');
  assert.is(json.rowCount, 6, 'six months');
  assert.match(lines[0], /month/);
  const csvMonths = lines.slice(1).map((l) => l.split(',')[0].replace(/"/g, '').slice(0, 7));
  assert.equal(csvMonths, json.spec.data.values.map((r: any) => String(r.month).slice(0, 7)));

  await tile.locator('button', { hasText: 'View as table' }).click();
  const rows = await tile.locator('mq-data-table tbody tr').count();
  assert.is(rows, json.rowCount);

  for (const type of ['PNG', 'SVG']) {
    const [download] = await Promise.all([page.waitForEvent('download'), tile.locator('button', { hasText: type }).click()]);
    assert.match(download.suggestedFilename(), new RegExp(`^mrr_trend.*\\.${type.toLowerCase()}$`));
  }
  // Keyboard: the chart itself is reachable (tabindex) and described.
  const described = await tile.locator('.vega').evaluate((el) => ({ tab: el.getAttribute('tabindex'), label: el.getAttribute('aria-label'),
    desc: el.getRootNode() instanceof ShadowRoot ? (el.getRootNode() as ShadowRoot).getElementById(el.getAttribute('aria-describedby')!)?.textContent : '' }));
  assert.is(described.tab, '0');
  assert.ok(described.label);
  assert.match(described.desc ?? '', /data rows/);
  assert.equal(errors, []);
});

test('light theme: the toggle switches without reload and charts redraw from the CSS variables', async () => {
  await page.goto(`${server.url}/dashboards/growth_retention`);
  await settled();
  await page.click('form.theme-toggle button[value=light]');
  await page.waitForFunction(() => document.documentElement?.dataset.theme === 'light'); // null while the form's navigation swaps documents
  const tiles = await settled();
  assertAllDrawn(tiles, 'light');
  const axisColour = await page.locator('mq-chart[report=signups]').evaluate((el) =>
    el.shadowRoot!.querySelector('.vega svg .role-axis-label text')?.getAttribute('fill'));
  assert.is(axisColour, '#5c5c5c', 'axis labels use the light theme --fg-muted');
  await screenshot(page, 'dashboard-growth_retention-light');
  // The choice persists (cookie) for the next page load.
  await page.reload();
  assert.is(await page.getAttribute('html', 'data-theme'), 'light');
  // Auto follows the operating system's preference.
  await page.click('form.theme-toggle button[value=auto]');
  await page.waitForFunction(() => !document.documentElement.hasAttribute('data-theme'));
  const bg = (scheme: 'light' | 'dark') => page.emulateMedia({ colorScheme: scheme }).then(() =>
    page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--bg').trim()));
  assert.is(await bg('light'), '#f6f6f6');
  assert.is(await bg('dark'), '#141414');
  await page.click('form.theme-toggle button[value=dark]');
  await page.waitForFunction(() => document.documentElement?.dataset.theme === 'dark'); // null while the form's navigation swaps documents
  assert.equal(errors, []);
});

test('the report page (server-rendered by the report engine) draws its <mq-chart> under the same CSP', async () => {
  await page.goto(`${server.url}/reports/mrr_movements`);
  const tiles = await settled();
  assert.is(tiles.length, 1);
  assertAllDrawn(tiles, 'report page');
  await page.goto(`${server.url}/reports/kpi_mrr`);
  assertAllDrawn(await settled(), 'KPI report page');
  assert.equal(errors, []);
  await screenshot(page, 'report-kpi_mrr');
});

test('a failed refresh shows the stale flag; a failing tile says what failed while the others render', async () => {
  // A mart that some Growth & retention tiles read and others do not.
  const exec = DASHBOARDS.find((d) => d.id === 'growth_retention')!.tiles.map((x) => x.report);
  const catalog = loadCatalog();
  const marts = (id: string) => catalog.reports.get(id)!.allMarts;
  const mart = [...new Set(exec.flatMap(marts))].find((m) => { const n = exec.filter((r) => marts(r).includes(m)).length; return n > 0 && n < exec.length; })!;
  assert.ok(mart, 'a mart read by some growth tiles only');
  await t.db.query(`UPDATE report_marts SET stale = true, last_error = 'test: refresh failed' WHERE name = $1`, [mart]);
  try {
    await page.goto(`${server.url}/dashboards/growth_retention`);
    const tiles = await settled();
    assertAllDrawn(tiles, 'stale');
    const flags = await page.$$eval('mq-chart', (els) => els.map((e) => [e.getAttribute('report')!, !!e.shadowRoot!.querySelector('.stale')] as const));
    for (const [report, flagged] of flags) assert.is(flagged, marts(report).includes(mart), `${report}: stale flag (${mart} failed)`);
  } finally {
    await t.db.query(`UPDATE report_marts SET stale = false, last_error = NULL WHERE name = $1`, [mart]);
  }
  // A tile asked for a month that is not one: the engine's 400 message, naming the field, is shown in the tile.
  await page.$eval('mq-chart[report=signups]', (el) => el.setAttribute('params', 'from=2026-13'));
  await page.waitForFunction(() => document.querySelector('mq-chart[report=signups]')!.getAttribute('state') === 'error');
  const message = await page.$eval('mq-chart[report=signups]', (el) => el.shadowRoot!.querySelector('[role=alert]')!.textContent!);
  assert.match(message, /Report "signups" failed \(400\)/);
  assert.match(message, /from/);
  // The browser logs the failed fetch (400) itself; that one is expected, nothing else.
  assert.ok(errors.every((e) => /status of 400/.test(e)), errors.join('\n'));
  errors.length = 0;
});

function monthsBefore(month: string, n: number) {
  const [y, m] = month.split('-').map(Number);
  const total = y * 12 + m - 1 - n;
  return `${Math.floor(total / 12)}-${String(total % 12 + 1).padStart(2, '0')}`;
}

test.run();
