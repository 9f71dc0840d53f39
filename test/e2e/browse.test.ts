// In Chromium: a subscriber with an active subscription (created directly in the database) browses the catalog,
// searches with a typo, opens the title, plays it (the simulated player posts its progress) and the viewing is one
// completed watch_events row; then the same pages in the light theme, and axe-core (WCAG 2.1 A/AA) on each, both
// themes. Screenshots in test/artifacts/browse-*.png.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import sql from 'sql-template-tag';
import type { Browser, Page } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser, sessionCookie } from '../helpers/auth.ts';
import { loadTitles } from '../../etl/titles/load.ts';
import { BUNDLED_TITLES } from '../../etl/titles/demo-step.ts';

const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
let page: Page;
let errors: string[];
let user: { id: number };

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  user = await createUser(t.db, { role: 'subscriber', name: 'Sam Viewer' });
  await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES (${user.id}, (SELECT id FROM plans WHERE code = 'premium'), 'active', now(), now() + interval '1 month')`);
  // some viewing by someone else, so Popular now has titles
  const other = await createUser(t.db, { role: 'subscriber' });
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed)
    SELECT ${other.id}, id, now() - interval '1 day', 600, false FROM titles WHERE title IN ('Ozark', 'Narcos', 'The Crown', 'Squid Game', 'Lupin', 'Money Heist', 'The Witcher')`);
  server = await startTestServer({ db: t.db });
  browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const [name, value] = (await sessionCookie(t.db, user.id)).split('=');
  await ctx.addCookies([{ name, value, url: server.url }]);
  page = await ctx.newPage();
  errors = watchErrors(page);
});
test.after(async () => { await browser?.close(); await server?.close(); });

async function axe(p: Page, label: string): Promise<string[]> {
  if (!(await p.evaluate(() => 'axe' in window))) await p.evaluate(AXE);
  const violations = await p.evaluate(async () => {
    const r = await (window as any).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return r.violations.map((v: any) => `${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n: any) => JSON.stringify(n.target)).join(' ')}`);
  });
  return violations.map((v: string) => `${label}: ${v}`);
}

test('browse -> search with a typo -> title -> play to the end: one completed watch_events row; both themes, no axe violation', async () => {
  const a11y: string[] = [];
  const res = await page.goto(`${server.url}/`);
  assert.is(res?.status(), 200);
  assert.is(new URL(page.url()).pathname, '/browse', 'a subscriber lands on /browse');
  assert.ok(await page.isVisible('h2:has-text("Popular now")'));
  assert.ok(await page.isVisible('h2:has-text("New on Marquee")'));
  await page.waitForFunction(() => [...document.querySelectorAll('.shelf img')].slice(0, 6).every((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0));
  a11y.push(...await axe(page, 'browse dark'));
  await screenshot(page, 'browse-01-home-dark');

  await page.fill('#b-q', 'stranger thigns');
  await Promise.all([page.waitForURL(/\/browse\?q=stranger\+thigns$/), page.press('#b-q', 'Enter')]);
  const first = page.locator('.title-grid .title-card a').first();
  assert.is(await first.locator('img').getAttribute('alt'), 'Stranger Things');
  a11y.push(...await axe(page, 'results dark'));
  await screenshot(page, 'browse-02-search-dark');

  await Promise.all([page.waitForURL(/\/titles\/\d+$/), first.click()]);
  assert.is(await page.textContent('h1'), 'Stranger Things');
  assert.ok(await page.isVisible('h2:has-text("More like this")'));
  a11y.push(...await axe(page, 'title dark'));
  await screenshot(page, 'browse-03-title-dark');
  const titleUrl = page.url();
  const titleId = Number(new URL(titleUrl).pathname.split('/')[2]);

  await Promise.all([page.waitForURL(/\/play$/), page.click('a.play')]);
  const toggle = page.locator('.player button.toggle');
  await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('.player button.toggle')!.disabled);
  a11y.push(...await axe(page, 'player dark'));
  // play at 60x for a moment, pause (a report), then at 600x to the end (a 45-minute episode: ~4.5 s)
  await page.selectOption('.speed select', '60');
  await toggle.click();
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.player')!.dataset.session) > 0);
  await page.waitForTimeout(1500);
  await toggle.click();
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.player')!.dataset.saved) > 0);
  const midway = await t.db.query(sql`SELECT seconds_watched, completed FROM watch_events WHERE user_id = ${user.id}`);
  assert.is(midway.length, 1);
  assert.ok(midway[0].seconds_watched > 0 && !midway[0].completed, JSON.stringify(midway));
  await screenshot(page, 'browse-04-player-paused-dark');
  await page.selectOption('.speed select', '600');
  await toggle.click();
  await page.waitForFunction(() => /completed/.test(document.querySelector('.player .status')!.textContent ?? ''), null, { timeout: 30_000 });
  await screenshot(page, 'browse-05-player-done-dark');
  const done = await t.db.query(sql`SELECT title_id, seconds_watched, completed FROM watch_events WHERE user_id = ${user.id}`);
  assert.equal(done, [{ title_id: titleId, seconds_watched: 2700, completed: true }], 'one row for the viewing, completed');

  // light theme: the header's toggle; the same pages again
  await page.goto(`${server.url}/browse`);
  await page.click('form.theme-toggle button[value="light"]');
  await page.waitForFunction(() => document.documentElement?.dataset.theme === 'light'); // null while the form's navigation swaps documents
  await page.reload();
  assert.is(await page.getAttribute('html', 'data-theme'), 'light');
  a11y.push(...await axe(page, 'browse light'));
  await screenshot(page, 'browse-06-home-light');
  await page.goto(`${server.url}/browse?q=stranger+thigns`);
  a11y.push(...await axe(page, 'results light'));
  await screenshot(page, 'browse-07-search-light');
  await page.goto(titleUrl);
  a11y.push(...await axe(page, 'title light'));
  await screenshot(page, 'browse-08-title-light');
  await page.goto(`${titleUrl}/play`);
  await page.waitForFunction(() => !document.querySelector<HTMLButtonElement>('.player button.toggle')!.disabled);
  a11y.push(...await axe(page, 'player light'));
  await screenshot(page, 'browse-09-player-light');

  assert.equal(a11y, [], a11y.join('\n'));
  assert.equal(errors, [], `console errors: ${errors.join('\n')}`);
});

test('a subscriber without a subscription sees why and a link to /plans; the narrow layout holds', async () => {
  const bare = await createUser(t.db, { role: 'subscriber' });
  const c2 = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const [name, value] = (await sessionCookie(t.db, bare.id)).split('=');
  await c2.addCookies([{ name, value, url: server.url }, { name: 'mq_theme', value: 'dark', url: server.url }]);
  const p = await c2.newPage();
  const id = (await t.db.one<{ id: number }>(`SELECT id FROM titles WHERE title = 'Ozark'`))!.id;
  await p.goto(`${server.url}/titles/${id}`);
  assert.ok(await p.isDisabled('button.play'));
  assert.match(await p.textContent('#play-why') ?? '', /needs an active subscription/);
  assert.is(await p.getAttribute('#play-why a', 'href'), '/plans');
  const a11y = await axe(p, 'refused title 390px');
  await screenshot(p, 'browse-10-refused-mobile-dark');
  const res = await p.goto(`${server.url}/titles/${id}/play`);
  assert.is(res?.status(), 403);
  assert.is(await p.getAttribute('main a.button[href="/plans"]', 'href'), '/plans');
  a11y.push(...await axe(p, 'refused player'));
  await c2.close();
  assert.equal(a11y, [], a11y.join('\n'));
});

test.run();
