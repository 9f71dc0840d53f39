// The server-rendered report page in Chromium (fixture reports): the chart element draws, no console or CSP error,
// and without JavaScript the parameters form still works (GET, canonical redirect, server-rendered data table).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser } from '../helpers/auth.ts';
import { ensureBuilt } from '../../views/build.ts';
import { loadCatalog, ensureMarts, refreshMarts } from '../../server/reports/engine.ts';
import { createBasicSources } from '../fixtures/reports/basic-data.ts';

const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
let analyst: Awaited<ReturnType<typeof createUser>>;

test.before(async () => {
  await ensureBuilt();
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g * 7, 10 + g % 13 FROM generate_series(0, 45) g`);
  const catalog = loadCatalog(path.resolve(import.meta.dirname, '../fixtures/reports/basic'));
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  server = await startTestServer({ db: t.db, catalog });
  analyst = await createUser(t.db, { role: 'analyst' });
  browser = await launchBrowser();
});

test.after(async () => {
  await browser?.close();
  await server?.close();
});

async function signIn(javaScriptEnabled: boolean) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled });
  const page = await ctx.newPage();
  const errors = watchErrors(page);
  page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) errors.push(m.text()); });
  await page.goto(`${server.url}/login?next=/reports`);
  await page.fill('input[name=email]', analyst.email);
  await page.fill('input[name=password]', analyst.password);
  await Promise.all([page.waitForURL(/\/reports$/), page.press('input[name=password]', 'Enter')]);
  return { ctx, page, errors };
}

test('the chart draws on the report page, without console errors', async () => {
  const { ctx, page, errors } = await signIn(true);
  try {
    await page.click('a[href="/reports/fx_by_kind"]');
    await page.waitForFunction(() => {
      const el = document.querySelector('mq-chart');
      return el?.getAttribute('state') === 'error' || !!el?.shadowRoot?.querySelector('.vega svg, .vega canvas');
    }, null, { timeout: 20_000 });
    const drawn = await page.$eval('mq-chart', (e) => ({ state: e.getAttribute('state'), svg: !!e.shadowRoot?.querySelector('.vega svg, .vega canvas'), error: e.shadowRoot?.querySelector('.error')?.textContent ?? '' }));
    assert.equal(drawn, { state: 'ready', svg: true, error: '' });
    await screenshot(page, 'report-engine-page');
    assert.equal(errors, []);
  } finally {
    await ctx.close();
  }
});

test('a paged report: the chart says which rows it draws, and Next goes to the next page', async () => {
  const { ctx, page, errors } = await signIn(true);
  try {
    await page.goto(`${server.url}/reports/fx_paged?page=2`);
    const meta = () => page.waitForFunction(() => document.querySelector('mq-chart')?.shadowRoot?.querySelector('.meta')?.textContent?.replace(/\s+/g, ' ').trim() ?? '');
    await page.waitForFunction(() => !!document.querySelector('mq-chart')?.shadowRoot?.querySelector('.vega svg, .vega canvas'), null, { timeout: 20_000 });
    assert.match(String(await (await meta()).jsonValue()), /rows 3–4 \(page 2\)$/);
    await Promise.all([page.waitForURL(/page=3$/), page.click('a[rel=next]')]);
    await page.waitForFunction(() => /row 5 \(page 3\)/.test(document.querySelector('mq-chart')?.shadowRoot?.querySelector('.meta')?.textContent ?? ''), null, { timeout: 20_000 });
    assert.is(await page.$('a[rel=next]'), null, 'the last page within the cap has no Next');
    assert.equal(errors, []);
  } finally {
    await ctx.close();
  }
});

test('without JavaScript the GET form applies parameters and lands on the canonical URL with a data table', async () => {
  const { ctx, page } = await signIn(false);
  try {
    await page.goto(`${server.url}/reports/fx_by_kind`);
    await page.selectOption('select[name=kinds]', ['c', 'a']);
    await page.fill('input[name=min_n]', '1');
    await Promise.all([page.waitForURL(/kinds=a&kinds=c&min_n=1$/), page.click('form.params button[type=submit]')]);
    assert.match(page.url(), /\/reports\/fx_by_kind\?kinds=a&kinds=c&min_n=1$/);
    const kinds = await page.$$eval('details.data-table tbody tr td:nth-child(2)', (tds) => [...new Set(tds.map((td) => td.textContent))].sort());
    assert.equal(kinds, ['a', 'c']);
    await page.goto(`${server.url}/reports/fx_by_kind?min_n=abc`);
    assert.match(await page.textContent('.field.invalid') ?? '', /whole number/);
  } finally {
    await ctx.close();
  }
});

test.run();
