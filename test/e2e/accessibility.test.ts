// axe-core in Chromium, both themes (test/helpers/a11y.ts), on the pages that are not report pages: home, sign-in,
// sign-up, the error page, account (subscriber and admin), password, admin users list/new/detail/reset, audit, the
// dashboards index and every dashboard, the catalog (/browse shelves, a search, a filter, a title's page, the player and
// its refusal) and /plans. The report pages: accessibility-reports-1/2.test.ts. Also here: every chart is
// announced by its report's title (not "Vega visualization") and described by its summary, the theme buttons announce
// the chosen theme, and the skip links lead past the header to the content and the filters.
// Screenshots of a few pages in both themes go to test/artifacts/a11y-*.png.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { screenshot } from '../helpers/browser.ts';
import { axeSuite, reportShard, THEMES } from '../helpers/a11y.ts';
import { sitePages } from '../helpers/pages.ts';
import { loadCatalog } from '../../server/reports/engine.ts';

const catalog = loadCatalog();
const getCatalog = () => catalog;

const h = axeSuite(test, (p) => !p.path.startsWith('/reports/'), 'every page but the report pages');
const { open, setTheme } = h;

test('the axe files together cover every page of the product, each once', () => {
  const all = sitePages(getCatalog(), { userId: 1, title: { id: 1, name: 'Title' } });
  const shares = [(p: (typeof all)[number]) => !p.path.startsWith('/reports/'), reportShard(0, 2), reportShard(1, 2)];
  for (const p of all) assert.is(shares.filter((f) => f(p)).length, 1, p.path);
  assert.ok(all.length >= 53, `only ${all.length} pages`);
});

test('every chart is an image named by its report\'s title, described by its summary', async () => {
  await setTheme('dark');
  const page = await open({ path: '/dashboards/executive_overview', as: 'admin' });
  const charts = await page.$$eval('mq-chart:not([kind="kpi"])', (els) => els.map((e) => {
    const root = e.shadowRoot!;
    const img = root.querySelector('.vega')!;
    const desc = root.getElementById(img.getAttribute('aria-describedby') ?? '');
    return { title: root.querySelector('.title')?.textContent?.trim(), role: img.getAttribute('role'), label: img.getAttribute('aria-label'), summary: desc?.textContent?.trim() ?? '' };
  }));
  assert.ok(charts.length >= 3, `${charts.length} charts`);
  for (const c of charts) {
    assert.is(c.role, 'img', c.title);
    assert.is(c.label, c.title);
    assert.ok(c.summary.length > 10, `${c.title}: summary "${c.summary}"`);
    // Chromium's accessibility tree (what a screen reader gets) agrees
    assert.is(await page.getByRole('img', { name: c.title, exact: true }).count(), 1, `${c.title}: by role and name`);
  }
  assert.is(await page.getByRole('img', { name: 'Vega visualization' }).count(), 0);
});

test('the theme buttons announce the chosen theme', async () => {
  for (const theme of THEMES) {
    await setTheme(theme);
    const page = await open({ path: '/login', as: null });
    for (const x of ['Auto', 'Dark', 'Light']) {
      const pressed = await page.getByRole('button', { name: x, exact: true, pressed: x.toLowerCase() === theme }).count();
      assert.is(pressed, 1, `${theme}: ${x}`);
    }
  }
});

test('skip links: the first tab stops lead to the content and past the header to the filters', async () => {
  await setTheme('light');
  for (const [path, label, first] of [
    ['/dashboards/executive_overview', 'Skip to filters', 'a[data-period="3m"]'],
    ['/reports/mrr_trend', 'Skip to parameters', '#filters input, #filters select'],
  ] as const) {
    const page = await open({ path, as: 'admin' });
    await page.keyboard.press('Tab');
    assert.is(await page.evaluate(() => document.activeElement?.textContent), 'Skip to main content');
    assert.ok(await page.evaluate(() => { const r = document.activeElement!.getBoundingClientRect(); return r.top >= 0 && r.height > 0; }), 'visible when focused');
    await page.keyboard.press('Tab');
    assert.is(await page.evaluate(() => document.activeElement?.textContent), label);
    if (path.startsWith('/reports')) await screenshot(page, 'a11y-skip-link-light');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    const inFilters = await page.evaluate((sel) => {
      const a = document.activeElement!;
      return { inside: !!a.closest('#filters'), first: a === document.querySelector(sel) };
    }, first);
    assert.equal(inFilters, { inside: true, first: true }, `${path}: after the skip link, Tab lands on the first filter`);
  }
});

test.run();
