// Embed links in Chromium: a page on another origin frames a dashboard link and a report link (no session anywhere)
// and every chart draws from the link's data URLs, with no console error (CSP included); a page on an origin the link
// does not allow gets no frame; the freed parameter's form changes the view and keeps the token.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sql from 'sql-template-tag';
import type { Browser, Frame } from 'playwright-core';
import { useDatabase } from '../helpers/db.ts';
import { startTestServer } from '../helpers/server.ts';
import { launchBrowser, watchErrors, screenshot } from '../helpers/browser.ts';
import { createUser, sessionCookie, authedRequest } from '../helpers/auth.ts';
import { loadDashboardData } from '../fixtures/dashboard-data.ts';
import { createApp } from '../../server/app.ts';
import { ensureBuilt } from '../../views/build.ts';

const t = useDatabase(test);
let server: Awaited<ReturnType<typeof startTestServer>>;
let browser: Browser;
/** A stand-in for the intranet: serves one page framing whatever `frame` says. */
let intranet: http.Server;
let intranetUrl = '';
let frameSrc = '';

test.before(async () => {
  await ensureBuilt();
  await loadDashboardData(t.db, { users: 200 });
  server = await startTestServer({ db: t.db });
  intranet = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<!DOCTYPE html><html lang="en"><head><title>Intranet</title></head><body><h1>KPIs</h1>
      <iframe title="Marquee" src="${frameSrc}" width="1200" height="1400" style="border:0"></iframe></body></html>`);
  });
  await new Promise<void>((r) => intranet.listen(0, '127.0.0.1', r));
  intranetUrl = `http://localhost:${(intranet.address() as AddressInfo).port}`;
  browser = await launchBrowser();
});

test.after(async () => {
  await browser?.close();
  await server?.close();
  await new Promise<void>((r) => intranet?.close(() => r()));
});

async function link(resource: string, extra: Record<string, string> = {}) {
  const manager = await createUser(t.db, { role: 'manager' });
  const app = createApp({ db: t.db, log: () => {} });
  const res = await authedRequest(app, await sessionCookie(t.db, manager.id), '/embeds', { method: 'POST',
    body: { resource, origin: intranetUrl, ...extra } });
  assert.is(res.status, 303, await res.clone().text());
  const id = /created=([0-9a-f-]{36})/.exec(res.headers.get('location')!)![1];
  const row = (await t.db.one<{ token: string; resource_kind: string; resource_id: string }>(
    sql`SELECT token, resource_kind, resource_id FROM embed_links WHERE id = ${id}::uuid`))!;
  return `${server.url}/embed/${row.resource_kind}s/${row.resource_id}?t=${encodeURIComponent(row.token)}`;
}

async function settled(frame: Frame) {
  await frame.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('mq-chart')];
    return tiles.length > 0 && tiles.every((e) => e.getAttribute('state') === 'ready' || e.getAttribute('state') === 'error');
  }, null, { timeout: 60_000 });
  return frame.$$eval('mq-chart', (els) => els.map((e) => ({
    report: e.getAttribute('report'), state: e.getAttribute('state'), error: e.shadowRoot?.querySelector('.error')?.textContent ?? '',
    drawn: !!e.shadowRoot?.querySelector('.vega svg, .vega canvas, mq-kpi'), csv: !!e.shadowRoot?.querySelector('a[download$=".csv"]'),
  })));
}

test('a dashboard link framed by the allowed origin draws every tile without a session', async () => {
  frameSrc = await link('dashboard:executive_overview', { locked: 'period=12m', free: 'plan' });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = watchErrors(page);
  page.on('console', (m) => { if (/Content.Security.Policy|frame-ancestors/i.test(m.text())) errors.push(m.text()); });
  await page.goto(intranetUrl);
  const frame = await (await page.waitForSelector('iframe')).contentFrame();
  assert.ok(frame);
  await frame!.waitForSelector('mq-chart');
  const tiles = await settled(frame!);
  assert.ok(tiles.length >= 4, `${tiles.length} tiles`);
  for (const tile of tiles) {
    assert.is(tile.state, 'ready', `${tile.report}: ${tile.error}`);
    assert.ok(tile.drawn, `${tile.report} drew`);
    assert.not.ok(tile.csv, `${tile.report}: no CSV link (it would need a session)`);
  }
  assert.is(await frame!.$('header.topbar'), null);
  assert.equal((await ctx.cookies()).filter((c) => c.name.includes('session')), []);
  await screenshot(page, 'embed-dashboard-in-iframe');
  assert.equal(errors, []);
  await ctx.close();
});

test('a report link: the freed parameter\'s form changes the view and keeps the token; another origin gets no frame', async () => {
  const url = await link('report:mrr_trend', { locked: 'to=2026-06', free: 'from' });
  frameSrc = url;
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = watchErrors(page);
  await page.goto(intranetUrl);
  const frame = (await (await page.waitForSelector('iframe')).contentFrame())!;
  await frame.waitForSelector('mq-chart');
  let [tile] = await settled(frame);
  assert.is(tile.state, 'ready', tile.error);
  await frame.fill('input[name=from]', '2026-02');
  await Promise.all([frame.waitForURL(/from=2026-02/), frame.click('#filters button[type=submit]')]);
  assert.match(frame.url(), /[?&]t=/);
  [tile] = await settled(frame);
  assert.is(tile.state, 'ready', tile.error);
  assert.is(await frame.getAttribute('mq-chart', 'params'), 'from=2026-02&to=2026-06');
  assert.equal(errors, []);
  await ctx.close();

  // the same link framed by a page the link does not allow: the browser refuses to render it
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  frameSrc = url;
  await otherPage.goto(intranetUrl.replace('localhost', '127.0.0.1'));
  const blocked = (await (await otherPage.waitForSelector('iframe')).contentFrame())!;
  // Chromium replaces a frame its ancestors may not have with its error page
  await blocked.waitForURL(/^chrome-error:/, { timeout: 30_000 });
  assert.is(await blocked.$('mq-chart'), null, 'no chart in a frame the link does not allow');
  await other.close();
});

test.run();
