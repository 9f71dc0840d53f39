// axe-core (WCAG 2.0/2.1 A and AA: tags wcag2a, wcag2aa, wcag21a, wcag21aa) in Chromium over the pages of
// test/helpers/pages.ts, in the dark and the light theme, after the charts have drawn, on a small simulated business.
// The pages are shared out over a few test files (test/e2e/accessibility*.test.ts) so that each stays well inside the
// runner's per-file timeout on a busy machine. A violation fails naming page, theme, rule and node.
// A11Y_PAGES=<regex> narrows the pages while working on one; A11Y_TIMING=<file> appends per-page timings to a file.
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { useDatabase } from './db.ts';
import { startTestServer } from './server.ts';
import { launchBrowser, watchErrors, screenshot } from './browser.ts';
import { createUser, sessionCookie } from './auth.ts';
import { sitePages, sitePagesData, type SitePage } from './pages.ts';
import { loadDashboardData } from '../fixtures/dashboard-data.ts';
import { loadCatalog } from '../../server/reports/engine.ts';

const catalog = loadCatalog();
const getCatalog = () => catalog;
import { ensureBuilt } from '../../views/build.ts';
import type { Role } from '../../server/auth/access.ts';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
export const THEMES = ['dark', 'light'] as const;
const SHOTS = new Set(['/login', '/signup', '/dashboards/executive_overview', '/reports/mrr_trend', '/admin/users', '/reports/mrr_movements']);
const timing = (line: string) => { if (process.env.A11Y_TIMING) fs.appendFileSync(process.env.A11Y_TIMING, line + '\n'); };

type Suite = Parameters<typeof useDatabase>[0] & { (name: string, fn: () => Promise<void>): void };

export interface A11yHarness {
  url(): string;
  setTheme(theme: string): Promise<void>;
  open(p: SitePage): Promise<Page>;
}

/** Sets up the data, server, browser and one context per role on `test`, and registers the axe test for `which`. */
export function axeSuite(test: Suite, which: (p: SitePage) => boolean, label: string): A11yHarness {
  const t = useDatabase(test);
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let browser: Browser;
  const contexts = new Map<Role | null, { ctx: BrowserContext; page: Page; errors: string[] }>();
  let pages: SitePage[] = [];

  test.before(async () => {
    const t0 = Date.now();
    await ensureBuilt();
    await loadDashboardData(t.db, { users: 300 });
    server = await startTestServer({ db: t.db });
    const admin = await createUser(t.db, { role: 'admin' });
    const subscriber = await createUser(t.db, { role: 'subscriber' });
    const analyst = await createUser(t.db, { role: 'analyst' });
    const only = process.env.A11Y_PAGES ? new RegExp(process.env.A11Y_PAGES) : undefined;
    const title = await sitePagesData(t.db, admin.id);
    pages = sitePages(getCatalog(), { userId: analyst.id, title }).filter((p) => which(p) && (!only || only.test(p.path)));
    timing(`${label}: setup ${Date.now() - t0} ms`);
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

  const harness: A11yHarness = {
    url: () => server.url,
    async setTheme(theme) {
      for (const { ctx } of contexts.values()) await ctx.addCookies([{ name: 'mq_theme', value: theme, url: server.url }]);
    },
    /** Opens a page as its role (a form post for the reset page), waits for every chart to settle. */
    async open(p) {
      const { page } = contexts.get(p.as)!;
      if (p.post) {
        await page.goto(`${server.url}${p.path.replace(/\/reset-password$/, '')}`);
        await Promise.all([page.waitForURL(`${server.url}${p.path}`), page.click(`form[action="${p.path}"] button`)]);
      } else {
        const res = await page.goto(`${server.url}${p.path}`);
        assert.is(res?.status(), p.status ?? 200, `${p.path}: status`);
      }
      await page.waitForFunction(() => [...document.querySelectorAll('mq-chart')]
        .every((e) => e.getAttribute('state') === 'ready' || e.getAttribute('state') === 'error'), null, { timeout: 60_000 });
      const broken = await page.$$eval('mq-chart[state="error"]', (els) => els.map((e) => `${e.getAttribute('report')}: ${e.shadowRoot?.querySelector('.error')?.textContent}`));
      assert.equal(broken, [], `${p.path}: charts in error`);
      return page;
    },
  };

  test(`axe-core finds no WCAG 2.1 A/AA violation on ${label}, in the dark and the light theme`, async () => {
    assert.ok(pages.length > 0, 'no pages');
    const failures: string[] = [];
    for (const theme of THEMES) {
      await harness.setTheme(theme);
      for (const p of pages) {
        const t1 = Date.now();
        const page = await harness.open(p);
        assert.is(await page.getAttribute('html', 'data-theme'), theme, `${p.path}: theme`);
        const t2 = Date.now();
        const violations = await axe(page);
        timing(`${p.path} ${theme}: open ${t2 - t1} ms, axe ${Date.now() - t2} ms`);
        for (const v of violations) {
          for (const n of v.nodes) {
            failures.push(`${p.path} (${p.as ?? 'signed out'}, ${theme}): ${v.id} [${v.impact}] ${v.help} — ${JSON.stringify(n.target)}: ${(n.failureSummary ?? '').replace(/\s+/g, ' ')}`);
          }
        }
        // a page meant to answer an error status (404, a refused player's 403): that status is the console's only complaint
        if (p.status) { const { errors } = contexts.get(p.as)!; errors.splice(0, errors.length, ...errors.filter((e) => !e.includes(`status of ${p.status}`))); }
        if (SHOTS.has(p.path)) await screenshot(page, `a11y-${p.path.slice(1).replace(/\//g, '-')}-${theme}`);
      }
    }
    assert.equal(failures, [], `${failures.length} axe violations:\n${failures.slice(0, 40).join('\n')}`);
    for (const [role, { errors }] of contexts) assert.equal(errors, [], `${role ?? 'signed out'}: console errors`);
  });

  return harness;
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

/** Report pages are shared out by the position of their id in the sorted catalog: shard `i` of `n`. */
export function reportShard(i: number, n: number) {
  const ids = [...getCatalog().reports.keys()].sort();
  return (p: SitePage) => p.path.startsWith('/reports/') && ids.indexOf(p.path.slice('/reports/'.length)) % n === i;
}
