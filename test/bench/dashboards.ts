// npm run bench -- dashboards [--dashboard=<id>]: time from navigation to every tile of each dashboard a manager sees
// (or only the one named) drawn (headless Chromium, real server, report engine and marts over a simulated business),
// cold (new browser context: empty cache) and warm (same context again), where the warm time went (HTML, scripts run,
// report API requests, chart chunk, first and last tile drawn), plus the JS/CSS bytes transferred on a cold load of
// the Executive overview. Baseline in the same run: the /dashboards list page (same layout and CSS, no charts, no
// bundle) cold and warm.
// Targets: warm <= 1 s on localhost for every dashboard; <= 350 KB compressed JS.
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
import { loadDashboards } from '../../server/dashboards/catalog.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const ONLY = process.argv.find((a) => a.startsWith('--dashboard='))?.split('=')[1];
const USERS = Number(process.env.BENCH_USERS ?? 2000);

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const kb = (n: number) => `${fmt(n / 1024)} KB`;
/** Where a dashboard load's time went: ms since navigation start. */
interface Phases { drawn: number; html: number; script: number; apiStart: number; apiEnd: number; apiRequests: number; apiSlowest: number; vega: number; first: number; last: number }

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
    // when the page's script had defined the tiles, and when each tile reported itself drawn
    await ctx.addInitScript(() => {
      const marks = (window as any).__mqBench = { script: 0, rendered: [] as number[] };
      void customElements.whenDefined('mq-chart').then(() => { marks.script = performance.now(); });
      document.addEventListener('mq-chart-rendered', () => marks.rendered.push(performance.now()));
    });
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

  /** The /dashboards list page: ms from navigation start to its load event. */
  async function loadPlain(page: Page, path: string): Promise<number> {
    await page.goto(base + path, { waitUntil: 'load' });
    return page.evaluate(() => performance.now());
  }

  /** A dashboard: ms from navigation start until every tile is ready (measured in the page: performance.now() is since
   *  navigation), and where the time went. */
  async function load(page: Page, path: string): Promise<Phases> {
    await page.goto(base + path, { waitUntil: 'commit' });
    await page.waitForFunction(() => {
      const els = [...document.querySelectorAll('mq-chart')];
      return els.length > 0 && els.every((e) => e.getAttribute('state') === 'ready');
    }, null, { timeout: 30_000, polling: 'raf' });
    const bad = await page.$$eval('mq-chart', (els) => els.filter((e) => e.getAttribute('state') !== 'ready').length);
    if (bad) throw new Error(`${bad} tiles did not render`);
    return page.evaluate(() => {
      const now = performance.now();
      const res = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      const api = res.filter((x) => x.name.includes('/api/reports/'));
      const vega = res.find((x) => /\/vega-render-[^/]*\.js$/.test(x.name));
      const marks = (window as any).__mqBench as { script: number; rendered: number[] };
      return {
        drawn: now, html: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).responseEnd,
        script: marks.script, apiStart: Math.min(...api.map((x) => x.startTime)), apiEnd: Math.max(...api.map((x) => x.responseEnd)),
        apiRequests: api.length, apiSlowest: Math.max(...api.map((x) => x.responseEnd - x.startTime)), vega: vega?.responseEnd ?? 0,
        first: Math.min(...marks.rendered), last: Math.max(...marks.rendered),
      };
    });
  }

  const ids = [...loadDashboards().values()].filter((d) => d.roles.includes('manager') && (!ONLY || d.id === ONLY)).map((d) => d.id);
  if (!ids.length) throw new Error(`no dashboard ${ONLY ?? ''} visible to a manager`);
  const results: { id: string; tiles: number; cold: number[]; warm: number[]; phases: Phases[] }[] = [];
  const baseCold: number[] = [], baseWarm: number[] = [];
  let bytes = { js: 0, css: 0, jsRaw: 0, api: 0, files: 0 };
  for (let i = 0; i < RUNS; i++) {
    for (const id of ids) {
      const res = results.find((r) => r.id === id) ?? (results.push({ id, tiles: 0, cold: [], warm: [], phases: [] }), results.at(-1)!);
      const { ctx, page, errors, cssBytes } = await newSession();
      // Cold: this context has never loaded the bundle (login pages load no script).
      const seen: Promise<void>[] = [];
      const b = { js: 0, css: 0, jsRaw: 0, api: 0, files: 0 };
      page.on('response', (r) => {
        const u = new URL(r.url());
        seen.push((async () => {
          const sizes = await r.request().sizes().catch(() => undefined);
          if (!sizes) return;
          if (u.pathname.endsWith('.js')) {
            b.js += sizes.responseBodySize;
            b.jsRaw += fs.statSync(nodePath.join(PUBLIC_DIR, u.pathname.replace(/^\/static\//, ''))).size;
            b.files++;
          }
          else if (u.pathname.startsWith('/api/reports/')) b.api += sizes.responseBodySize;
        })());
      });
      res.cold.push((await load(page, `/dashboards/${id}`)).drawn);
      await Promise.all(seen);
      page.removeAllListeners('response');
      if (i === 0 && id === 'executive_overview') bytes = { ...b, css: cssBytes };
      res.tiles = await page.$$eval('mq-chart', (els) => els.length);
      const w = await load(page, `/dashboards/${id}`);
      res.warm.push(w.drawn);
      res.phases.push(w);
      if (errors.length) throw new Error(`console errors on ${id}: ${errors.join('; ')}`);
      await ctx.close();
    }
    const bctx = await newSession();
    baseCold.push(await loadPlain(bctx.page, '/dashboards'));
    baseWarm.push(await loadPlain(bctx.page, '/dashboards'));
    await bctx.ctx.close();
  }

  const bc = median(baseCold), bw = median(baseWarm);
  console.log(`\nmachine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (other work on the machine inflates browser timings)`);
  console.log(`navigation -> every tile drawn (median of ${RUNS}, headless Chromium, localhost); baseline /dashboards list (no charts) load event: cold ${fmt(bc, 0)} ms, warm ${fmt(bw, 0)} ms`);
  for (const r of results) {
    const mc = median(r.cold), mw = median(r.warm), ph = (k: keyof Phases) => fmt(median(r.phases.map((p) => p[k] as number)), 0);
    console.log(`${r.id}: ${r.tiles} tiles`);
    console.log(`  cold (empty cache):   median ${fmt(mc, 0)} ms (runs: ${r.cold.map((x) => fmt(x, 0)).join(', ')})   ${fmt(mc / bc, 1)}x the baseline`);
    console.log(`  warm (cached assets): median ${fmt(mw, 0)} ms (runs: ${r.warm.map((x) => fmt(x, 0)).join(', ')})   ${fmt(mw / bw, 1)}x the baseline   target <= 1000 ms: ${mw <= 1000 ? 'met' : 'MISSED'}`);
    console.log(`  warm phases (median, ms since navigation): HTML ${ph('html')}, scripts run ${ph('script')}, ` +
      `report API ${ph('apiStart')}..${ph('apiEnd')} (${ph('apiRequests')} requests, slowest ${ph('apiSlowest')}), chart chunk ${ph('vega')}, tiles drawn ${ph('first')}..${ph('last')}, all seen drawn ${ph('drawn')}`);
    record(`${r.id} warm, every tile drawn (median of ${RUNS})`, mw, 'ms', { baseline: '/dashboards list, warm', baselineValue: bw, max: 1000 });
    record(`${r.id} cold, every tile drawn (median of ${RUNS})`, mc, 'ms', { baseline: '/dashboards list, cold', baselineValue: bc });
  }
  if (bytes.files) {
    console.log(`Transferred on a cold load of executive_overview: JS ${kb(bytes.js)} compressed (${kb(bytes.jsRaw)} uncompressed, ${bytes.files} files), ` +
      `CSS ${kb(bytes.css)} compressed, report API ${kb(bytes.api)}   JS target <= 350 KB: ${bytes.js <= 350 * 1024 ? 'met' : 'MISSED'}`);
    record('JS on a cold load, compressed', bytes.js / 1024, 'KB', { max: 350 });
  }
} finally {
  await browser?.close();
  await close();
  await bench.close();
}
