// npm run bench -- dashboards [--dashboard=<id>]: time from navigation to every tile of a dashboard (default the
// Executive overview; e.g. --dashboard=content_catalog) rendered (headless
// Chromium, real server, report engine and marts over a simulated business), cold (new browser context: empty
// cache) and warm (same context again), plus the JS/CSS bytes transferred on a cold load. Baseline in the same run:
// the /dashboards list page (same layout and CSS, no charts, no bundle) cold and warm.
// Targets: warm <= 1 s on localhost; <= 350 KB compressed JS.
import os from 'node:os';
import fs from 'node:fs';
import nodePath from 'node:path';
import { PUBLIC_DIR } from '../../server/assets.ts';
import type { Browser, Page } from 'playwright-core';
import { benchDatabase, fmt, record } from './lib.ts';
import { loadDashboardData } from '../fixtures/dashboard-data.ts';
import { createApp } from '../../server/app.ts';
import { listen } from '../../server/serve.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { createUser } from '../helpers/auth.ts';
import { ensureBuilt } from '../../views/build.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const DASHBOARD = process.argv.find((a) => a.startsWith('--dashboard='))?.split('=')[1] ?? 'executive_overview';
const USERS = Number(process.env.BENCH_USERS ?? 2000);

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const kb = (n: number) => `${fmt(n / 1024)} KB`;

await ensureBuilt((l) => console.log(l));
const bench = await benchDatabase('dashboards');
let browser: Browser | undefined;
let close = async () => {};
try {
  const t0 = performance.now();
  await loadDashboardData(bench.db, { users: USERS });
  console.log(`data: ${USERS} simulated customers, marts refreshed in ${fmt((performance.now() - t0) / 1000)} s`);
  const app = createApp({ db: bench.db, log: () => {} });
  const { server, url } = await listen(app.fetch, 0, '127.0.0.1');
  close = () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
  const base = url.replace(/\/$/, '');
  const user = await createUser(bench.db, { role: 'manager' });
  browser = await launchBrowser();

  async function newSession() {
    const ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    // The stylesheet first arrives with the login page: count it there.
    const css: Promise<number>[] = [];
    page.on('response', (res) => { if (new URL(res.url()).pathname.endsWith('.css')) css.push(res.request().sizes().then((s) => s.responseBodySize)); });
    const errors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(`${base}/login`);
    await page.fill('input[name=email]', user.email);
    await page.fill('input[name=password]', user.password);
    await Promise.all([page.waitForNavigation(), page.press('input[name=password]', 'Enter')]);
    const cssBytes = (await Promise.all(css)).reduce((a, b) => a + b, 0);
    page.removeAllListeners('response');
    return { ctx, page, errors, cssBytes };
  }

  /** ms from navigation start until every tile is ready (measured in the page: performance.now() is since navigation). */
  async function load(page: Page, path: string, tiles: boolean): Promise<number> {
    await page.goto(base + path, { waitUntil: tiles ? 'commit' : 'load' });
    if (!tiles) return page.evaluate(() => performance.now());
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll('mq-chart')];
      return els.length > 0 && els.every((e) => e.getAttribute('state') === 'ready');
    }, null, { timeout: 30_000, polling: 'raf' });
    const bad = await page.$$eval('mq-chart', (els) => els.filter((e) => e.getAttribute('state') !== 'ready').length);
    if (bad) throw new Error(`${bad} tiles did not render`);
    const t = await page.evaluate(() => {
      const api = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).filter((x) => x.name.includes('/api/reports/'));
      return { now: performance.now(), apiEnd: Math.max(...api.map((x) => x.responseEnd)), html: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).responseEnd };
    });
    phases.push(t);
    return t.now;
  }

  const path = `/dashboards/${DASHBOARD}`;
  const phases: { now: number; apiEnd: number; html: number }[] = [];
  const cold: number[] = [], warm: number[] = [], baseCold: number[] = [], baseWarm: number[] = [];
  let bytes = { js: 0, css: 0, jsRaw: 0, api: 0, files: 0 };
  let tileCount = 0;
  for (let i = 0; i < RUNS; i++) {
    const { ctx, page, errors, cssBytes } = await newSession();
    // Cold: this context has never loaded the bundle (login pages load no script).
    const seen: Promise<void>[] = [];
    const b = { js: 0, css: 0, jsRaw: 0, api: 0, files: 0 };
    page.on('response', (res) => {
      const u = new URL(res.url());
      seen.push((async () => {
        const sizes = await res.request().sizes().catch(() => undefined);
        if (!sizes) return;
        if (u.pathname.endsWith('.js')) {
          b.js += sizes.responseBodySize;
          b.jsRaw += fs.statSync(nodePath.join(PUBLIC_DIR, u.pathname.replace(/^\/static\//, ''))).size;
          b.files++;
        }
        else if (u.pathname.startsWith('/api/reports/')) b.api += sizes.responseBodySize;
      })());
    });
    cold.push(await load(page, path, true));
    await Promise.all(seen);
    if (i === 0) bytes = { ...b, css: cssBytes };
    tileCount = await page.$$eval('mq-chart', (els) => els.length);
    warm.push(await load(page, path, true));
    const bctx = await newSession();
    baseCold.push(await load(bctx.page, '/dashboards', false));
    baseWarm.push(await load(bctx.page, '/dashboards', false));
    await bctx.ctx.close();
    if (errors.length) throw new Error(`console errors: ${errors.join('; ')}`);
    await ctx.close();
  }

  const mc = median(cold), mw = median(warm), bc = median(baseCold), bw = median(baseWarm);
  console.log(`\nmachine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine inflates browser timings)`);
  console.log(`${DASHBOARD}: ${tileCount} tiles, navigation -> every tile rendered (median of ${RUNS}, headless Chromium, localhost)`);
  console.log(`  cold (empty cache):  median ${fmt(mc, 0)} ms, best ${fmt(Math.min(...cold), 0)} ms   (runs: ${cold.map((x) => fmt(x, 0)).join(', ')})   ${fmt(mc / bc, 1)}x the baseline`);
  console.log(`  warm (cached assets): median ${fmt(mw, 0)} ms, best ${fmt(Math.min(...warm), 0)} ms   (runs: ${warm.map((x) => fmt(x, 0)).join(', ')})   ${fmt(mw / bw, 1)}x the baseline   target <= 1000 ms: ${mw <= 1000 ? 'met' : 'MISSED'}`);
  const warmPhases = phases.filter((_, i) => i % 2 === 1);
  console.log(`  warm phases (median): page HTML received ${fmt(median(warmPhases.map((p) => p.html)), 0)} ms, ` +
    `last report API response ${fmt(median(warmPhases.map((p) => p.apiEnd)), 0)} ms, all drawn ${fmt(mw, 0)} ms`);
  console.log(`  baseline /dashboards list page (no charts) load event: cold ${fmt(bc, 0)} ms, warm ${fmt(bw, 0)} ms`);
  console.log(`Transferred on a cold load: JS ${kb(bytes.js)} compressed (${kb(bytes.jsRaw)} uncompressed, ${bytes.files} files), ` +
    `CSS ${kb(bytes.css)} compressed, report API ${kb(bytes.api)}   JS target <= 350 KB: ${bytes.js <= 350 * 1024 ? 'met' : 'MISSED'}`);
  record(`${DASHBOARD} warm, every tile drawn (median of ${RUNS})`, mw, 'ms', { baseline: '/dashboards list, warm', baselineValue: bw, max: 1000 });
  record(`${DASHBOARD} cold, every tile drawn (median of ${RUNS})`, mc, 'ms', { baseline: '/dashboards list, cold', baselineValue: bc });
  record('JS on a cold load, compressed', bytes.js / 1024, 'KB', { max: 350 });
} finally {
  await browser?.close();
  await close();
  await bench.close();
}
