// axe-core (WCAG 2.0/2.1 A and AA: tags wcag2a, wcag2aa, wcag21a, wcag21aa) in Chromium on every page of the product
// (test/helpers/pages.ts: signed out, subscriber, admin — every dashboard and every report page) in the dark and the
// light theme, after the charts have drawn, over a small simulated business. A violation fails naming page, theme,
// rule and node. Also: every chart is announced by its report's title (not "Vega visualization"), the theme buttons
// announce the chosen theme, and the skip links lead past the header to the content and the filters.
// Screenshots of a few pages in both themes go to test/artifacts/a11y-*.png.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser, sessionCookie } from '../helpers/auth.ts';
import { sitePages, type SitePage } from '../helpers/pages.ts';
import { loadDashboardData } from '../fixtures/dashboard-data.ts';
import { getCatalog } from '../../server/reports/engine.ts';
import { ensureBuilt } from '../../views/build.ts';
import type { Role } from '../../server/auth/access.ts';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const THEMES = ['dark', 'light'] as const;
const SHOTS = new Set(['/login', '/signup', '/dashboards/executive_overview', '/reports/mrr_trend', '/admin/users']);

const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
const contexts = new Map<Role | null, { ctx: BrowserContext; page: Page; errors: string[] }>();
let pages: SitePage[];

test.before(async () => {
  await ensureBuilt();
  await loadDashboardData(t.db, { users: 300 });
  server = await startTestServer({ db: t.db });
  const admin = await createUser(t.db, { role: 'admin' });
  const subscriber = await createUser(t.db, { role: 'subscriber' });
  const analyst = await createUser(t.db, { role: 'analyst' });
  // A11Y_PAGES=<regex> narrows the pages while working on one (the full run checks them all).
  const only = process.env.A11Y_PAGES ? new RegExp(process.env.A11Y_PAGES) : undefined;
  pages = sitePages(getCatalog(), { userId: analyst.id }).filter((p) => !only || only.test(p.path));
  browser = await launchBrowser();
  for (const [role, user] of [[null, null], ['admin', admin], ['subscriber', subscriber]] as const) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    if (user) {
      const [name, value] = (await sessionCookie(t.db, user.id)).split('=');
      await ctx.addCookies([{ name, value, url: server.url }]);
    }
    const page = await ctx.newPage();
    contexts.set(role, { ctx, page, errors: watchErrors(page) });
  }
});

test.after(async () => {
  await browser?.close();
  await server?.close();
});

async function setTheme(theme: string) {
  for (const { ctx } of contexts.values()) await ctx.addCookies([{ name: 'mq_theme', value: theme, url: server.url }]);
}

/** Opens a page as its role (a form post for the reset page), waits for every chart to settle. */
async function open(p: SitePage): Promise<Page> {
  const { page } = contexts.get(p.as)!;
  if (p.post) {
    await page.goto(`${server.url}${p.path.replace(/\/reset-password$/, '')}`);
    await Promise.all([page.waitForURL(`${server.url}${p.path}`), page.click(`form[action="${p.path}"] button`)]);
  } else {
    const res = await page.goto(`${server.url}${p.path}`);
    assert.is(res?.status(), p.status ?? 200, `${p.path}: status`);
  }
  await page.waitForFunction(() => [...document.querySelectorAll('mq-chart')]
    .every((e) => e.getAttribute('state') === 'ready' || e.getAttribute('state') === 'error'), null, { timeout: 30_000 });
  const broken = await page.$$eval('mq-chart[state="error"]', (els) => els.map((e) => `${e.getAttribute('report')}: ${e.shadowRoot?.querySelector('.error')?.textContent}`));
  assert.equal(broken, [], `${p.path}: charts in error`);
  return page;
}

interface AxeViolation { id: string; impact: string; help: string; nodes: { target: unknown[]; failureSummary?: string }[] }

async function axe(page: Page): Promise<AxeViolation[]> {
  // Evaluated through DevTools, not a <script>: the page's CSP allows no inline script.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  return page.evaluate(async (tags) => {
    const r = await (window as any).axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
    return r.violations.map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n: any) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  }, TAGS);
}

test('axe-core finds no WCAG 2.1 A/AA violation on any page, in the dark and the light theme', async () => {
  if (!process.env.A11Y_PAGES) assert.ok(pages.length >= 53, `only ${pages.length} pages`);
  const t0 = Date.now();
  const failures: string[] = [];
  for (const theme of THEMES) {
    await setTheme(theme);
    for (const p of pages) {
      const page = await open(p);
      assert.is(await page.getAttribute('html', 'data-theme'), theme, `${p.path}: theme`);
      for (const v of await axe(page)) {
        for (const n of v.nodes) {
          failures.push(`${p.path} (${p.as ?? 'signed out'}, ${theme}): ${v.id} [${v.impact}] ${v.help} — ${JSON.stringify(n.target)}: ${(n.failureSummary ?? '').replace(/\s+/g, ' ')}`);
        }
      }
      // the error page's own 404 is the console's only complaint there
      if (p.status) { const { errors } = contexts.get(p.as)!; errors.splice(0, errors.length, ...errors.filter((e) => !/status of 404/.test(e))); }
      if (SHOTS.has(p.path)) await screenshot(page, `a11y-${p.path.slice(1).replace(/\//g, '-')}-${theme}`);
    }
  }
  console.log(`axe: ${pages.length} pages × ${THEMES.length} themes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(failures, [], `${failures.length} axe violations:\n${failures.slice(0, 40).join('\n')}`);
  for (const [role, { errors }] of contexts) assert.equal(errors, [], `${role ?? 'signed out'}: console errors`);
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
