// Every report in sql/reports (the real directory, whoever wrote it): the catalog loads, its marts are created and
// refresh, its SQL plans and runs with default parameters, and its spec compiles with vega-lite and renders to SVG
// with vega in Node — once with the rows the report returned, once with sample rows shaped like its encodings —
// and the page's reuse of a compiled spec for other rows gives what compiling those rows gives.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as vl from 'vega-lite';
import * as vega from 'vega';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, ensureMarts, refreshMarts, checkReportSql, runReport, type Catalog } from '../server/reports/engine.ts';
import { compileChart, withData } from '../server/reports/chart.ts';
import { toVega } from '../views/vega-render.ts';

const t = useDatabase(test);
let catalog: Catalog;

async function svgOf(spec: Record<string, any>): Promise<string> {
  const compiled = compileChart(spec, spec.data?.values ?? []);
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try { return await view.toSVG(); } finally { view.finalize(); }
}

/** Sample rows from the fields the spec encodes: dates for temporal, numbers for quantitative, labels otherwise. */
function sampleRows(spec: Record<string, any>): Record<string, unknown>[] {
  const fields = new Map<string, string>();
  const walk = (node: unknown) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) { node.forEach(walk); return; }
    const o = node as Record<string, any>;
    if (typeof o.field === 'string' && typeof o.type === 'string' && !fields.has(o.field)) fields.set(o.field, o.type);
    for (const v of Object.values(o)) walk(v);
  };
  walk(spec);
  return [0, 1, 2].map((i) => Object.fromEntries([...fields].map(([f, type]) => [f,
    type === 'temporal' ? `2026-0${i + 1}-01` : type === 'quantitative' ? (i + 1) * 1.5 : `v${i}`])));
}

test.before(async () => {
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const out = await refreshMarts(t.db, catalog);
  const failed = out.results.filter((r) => !r.ok);
  assert.equal(failed, [], 'every mart refreshes on an empty database');
});

test('the real catalog loads and every report SQL plans', async () => {
  assert.ok(catalog.reports.size > 0, 'sql/reports has reports');
  await checkReportSql(t.db, catalog);
});

test('every report runs with its defaults and its spec compiles and renders to SVG', async () => {
  const problems: string[] = [];
  for (const r of catalog.reports.values()) {
    try {
      const res = await runReport(t.db, catalog, r.id, new URLSearchParams(), { role: r.roles[0], now: new Date() });
      assert.ok(Array.isArray(res.spec.data.values));
      assert.ok(vl.compile(res.spec as any).spec, `${r.id} compiles`);
      const svg = await svgOf(res.spec);
      if (!svg.startsWith('<svg')) problems.push(`${r.file}: no SVG with its own rows`);
      const sample = await svgOf(withData(r.spec, sampleRows(r.spec)));
      if (!sample.startsWith('<svg') || sample.length < 200) problems.push(`${r.file}: no SVG with sample rows`);
      // The page reuses a compiled spec for other rows (views/vega-render.ts): it must equal compiling those rows.
      const config = { mark: { color: '#123456' } };
      for (const spec of [res.spec, withData(r.spec, sampleRows(r.spec))]) {
        const direct = vl.compile(spec as any, { config: config as any }).spec;
        if (JSON.stringify(toVega(spec, config)) !== JSON.stringify(direct)) problems.push(`${r.file}: compiled spec reused wrongly`);
      }
    } catch (e: any) {
      problems.push(`${r.file}: ${e.message}`);
    }
  }
  assert.equal(problems, []);
});

test.run();
