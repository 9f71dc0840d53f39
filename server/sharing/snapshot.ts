// Static snapshots: a dashboard or report URL path (its query is its state) rendered to one self-contained HTML file —
// every chart drawn to SVG here with vega (a KPI tile is text, as on the page), the data tables, the filters and the
// as-of stamped, an inline stylesheet with print rules, no script. The same role checks as the page it snapshots (the route table, the dashboard's roles,
// the report's @roles through the engine). Used by GET /snapshot, `npm run snapshot` and the digests (README,
// "Sharing: snapshots and digests").
import fs from 'node:fs';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { AppDeps } from '../types.ts';
import { html, raw, type Html } from '../html.ts';
import { HttpError } from '../errors.ts';
import { allowed, findRule, type Role } from '../auth/access.ts';
import { runReport, type ReportResult, type ResultCache } from '../reports/engine.ts';
import { resolveDashboard, dashboardState } from '../dashboards/index.ts';
import { toQuery, tileQuery, resolvePeriod, PERIODS, type Filter } from '../../views/filters.ts';
import { exportFileBase } from '../../views/export-name.ts';
import { kpiOf, kpiPeriod, formatValue, formatChange, type Kpi } from '../../views/report-data.ts';

export interface Snapshot {
  title: string;
  /** the canonical path + query the snapshot shows */
  path: string;
  /** a file name for downloads and mail attachments */
  filename: string;
  html: string;
  /** the oldest as-of of the data shown (ISO) */
  asOf: string;
}

export type SnapshotDeps = Pick<AppDeps, 'catalog' | 'dashboards' | 'readDb' | 'now'> & { caches: { reports: ResultCache | null } };

const TABLE_ROWS = 500;
const DASHBOARD_PATH = /^\/dashboards\/([a-z0-9][a-z0-9_-]*)$/;
const REPORT_PATH = /^\/reports\/([a-z0-9_]+)$/;

/** What a snapshot path names: a dashboard or a report and its query, or a 400 saying what a path must look like. */
export function parseTarget(target: string): { kind: 'dashboard' | 'report'; id: string; pathname: string; query: URLSearchParams } {
  const bad = () => new HttpError(400, `path must be /dashboards/<id> or /reports/<id>, with its query string; got "${target.slice(0, 200)}"`, { path: 'a dashboard or report path' });
  if (typeof target !== 'string' || !target.startsWith('/') || target.startsWith('//') || target.length > 4000) throw bad();
  let u: URL;
  try { u = new URL(target, 'http://marquee.invalid'); } catch { throw bad(); }
  if (u.origin !== 'http://marquee.invalid' || u.hash) throw bad();
  const d = DASHBOARD_PATH.exec(u.pathname), r = REPORT_PATH.exec(u.pathname);
  if (!d && !r) throw bad();
  return { kind: d ? 'dashboard' : 'report', id: (d ?? r)![1], pathname: u.pathname, query: u.searchParams };
}

// The light theme's variables from public/app.css (the one palette the pages use), read once: charts in a snapshot
// look like the pages' charts in the light theme, which is also what prints well.
let lightVars: Map<string, string> | undefined;
function themeVar(name: string, fallback: string): string {
  if (!lightVars) {
    lightVars = new Map();
    const css = fs.readFileSync(new URL('../../public/app.css', import.meta.url), 'utf8');
    for (const block of css.matchAll(/(?:^|\n)(?::root, \[data-theme="dark"\]|\[data-theme="light"\]) \{([^}]*)\}/g)) {
      for (const m of block[1].matchAll(/(--[a-z0-9-]+):\s*([^;]+);/g)) lightVars.set(m[1], m[2].trim());
    }
  }
  return lightVars.get(name) ?? fallback;
}

function chartConfig(): Record<string, unknown> {
  const fg = themeVar('--fg', '#141414'), muted = themeVar('--fg-muted', '#5c5c5c'), grid = themeVar('--chart-grid', '#e2e2e2');
  const font = themeVar('--font', 'system-ui, sans-serif');
  const colors = Array.from({ length: 8 }, (_, i) => themeVar(`--chart-${i + 1}`, '#777'));
  const ramp = themeVar('--chart-ramp', 'viridis');
  return {
    background: null, font, padding: 4, view: { stroke: null },
    title: { color: fg, font, fontSize: 14, fontWeight: 600, anchor: 'start' },
    axis: { domainColor: grid, gridColor: grid, tickColor: grid, labelColor: muted, titleColor: muted, labelFont: font, titleFont: font },
    legend: { labelColor: muted, titleColor: muted, labelFont: font, titleFont: font, orient: 'bottom', columns: 4, labelLimit: 120 },
    text: { color: fg, font }, mark: { color: colors[0] }, line: { strokeWidth: 2.5 }, point: { filled: true },
    range: { category: colors, ordinal: { scheme: ramp }, heatmap: { scheme: ramp }, ramp: { scheme: ramp } },
    axisQuantitative: { gridDash: [2, 3] },
  };
}

/** A report's Vega-Lite spec (rows inlined, as the API serves it) drawn to SVG here; `width` replaces "container". */
export async function chartSvg(spec: Record<string, any>, width: number): Promise<string> {
  const sized = { ...spec, width: spec.width === 'container' || spec.width === undefined ? width : spec.width };
  const compiled = vl.compile(sized as any, { config: chartConfig() as any }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return v.toLocaleString('en-US', { maximumFractionDigits: Number.isInteger(v) ? 0 : 4 });
  if (v instanceof Date) return v.toISOString();
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function table(r: ReportResult): Html {
  const cols = r.rows.length ? Object.keys(r.rows[0]) : [];
  if (!cols.length) return html`<p class="muted">No rows for these parameters.</p>`;
  return html`<table><caption>${r.title}: ${r.rowCount.toLocaleString('en-US')} row${r.rowCount === 1 ? '' : 's'}${r.page != null ? ` (page ${r.page}${r.truncated ? '; more rows follow' : ''})` : r.truncated ? ` (capped at ${r.rowCap.toLocaleString('en-US')})` : ''}</caption>
    <thead><tr>${cols.map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
    <tbody>${r.rows.slice(0, TABLE_ROWS).map((row) => html`<tr>${cols.map((k) => html`<td>${cell(row[k])}</td>`)}</tr>`)}</tbody></table>
    ${r.rows.length > TABLE_ROWS ? html`<p class="muted">The first ${TABLE_ROWS} rows; the CSV export has them all.</p>` : ''}`;
}

const when = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')} UTC`;

/** A `@chart kpi` tile as the page shows it (views/mq-kpi.ts: the value, the month, the change with its arrow). */
function kpiFigure(kpi: Kpi, row: Record<string, unknown>, better: 'up' | 'down', now: Date): Html {
  const raw = kpi.delta ? row[kpi.delta] : undefined;
  const delta = raw === null || raw === undefined || raw === '' ? undefined : Number(raw);
  const direction = delta === undefined || !Number.isFinite(delta) || delta === 0 ? '' : delta > 0 ? 'up' : 'down';
  const period = kpiPeriod(row.month, now);
  return html`<figure class="kpi"><div class="value">${formatValue(row[kpi.value], kpi.format)}</div>
    ${period ? html`<div class="period">${period}</div>` : ''}
    ${kpi.delta ? html`<div class="delta">${delta === undefined || !Number.isFinite(delta) ? 'no previous month to compare'
      : html`<span class="${!direction ? '' : direction === better ? 'good' : 'bad'}">${direction === 'up' ? '▲ ' : direction === 'down' ? '▼ ' : ''}${formatChange(delta)}</span>
        vs previous month${typeof row.previous === 'number' ? ` (${formatValue(row.previous, kpi.format)})` : ''}`}</div>` : ''}</figure>`;
}

async function figure(r: ReportResult, width: number, now: Date, span = 1, better: 'up' | 'down' = 'up'): Promise<Html> {
  const kpi = kpiOf(r.spec);
  return html`<section class="tile span-${span}"><h2>${r.title}</h2>
    ${kpi ? kpiFigure(kpi, r.rows[0] ?? {}, better, now) : html`<figure>${raw(await chartSvg(r.spec, width))}</figure>`}
    <p class="asof">Data as of <time datetime="${r.asOf}">${when(r.asOf)}</time>${r.stale ? ' · stale: the last refresh failed' : ''}</p></section>`;
}

/** The charts in the page's grid (columns and tile sizes), then every tile's data table. */
function layout(columns: number, figures: Html[], results: ReportResult[]): Html[] {
  return [html`<div class="tiles cols-${columns}">${figures}</div>`, html`<section class="data"><h2>Data</h2>${results.map(table)}</section>`];
}

let stylesheet: string | undefined;
const css = () => (stylesheet ??= fs.readFileSync(new URL('./snapshot.css', import.meta.url), 'utf8'));

function documentOf(title: string, filters: [string, string][], taken: Date, asOf: string, body: Html[]): Html {
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Marquee snapshot</title>
<style>${raw(css())}</style>
</head>
<body>
<header><p class="brand">MARQUEE · snapshot</p><h1>${title}</h1>
<dl class="stamp">
  ${filters.map(([k, v]) => html`<div><dt>${k}</dt><dd>${v}</dd></div>`)}
  <div><dt>Data as of</dt><dd><time datetime="${asOf}">${when(asOf)}</time></dd></div>
  <div><dt>Snapshot taken</dt><dd><time datetime="${taken.toISOString()}">${when(taken.toISOString())}</time></dd></div>
</dl></header>
<main>${body}</main>
</body>
</html>`;
}

const oldest = (rs: ReportResult[], fallback: Date) => rs.map((r) => r.asOf).sort()[0] ?? fallback.toISOString();

/**
 * Renders `target` (a dashboard or report path with its query) as `role` sees it: 400 for a path that names neither
 * or bad filter values, 403 where the page would answer 403, 404 for an unknown dashboard or report.
 */
export async function renderSnapshot(deps: SnapshotDeps, role: Role, target: string): Promise<Snapshot> {
  const t = parseTarget(target);
  const rule = findRule('GET', t.pathname);
  if (!rule || !allowed(rule.access, { role } as any)) throw new HttpError(403, `Your role (${role}) does not have access to ${t.pathname}`);
  const now = deps.now();
  const run = (id: string, query: URLSearchParams) =>
    runReport(deps.readDb, deps.catalog, id, query, { role, now, cache: deps.caches.reports });

  if (t.kind === 'report') {
    const r = await run(t.id, t.query);
    const filters = Object.entries(r.params).map(([k, v]): [string, string] => [k, v === null ? '(none)' : Array.isArray(v) ? (v.length ? v.join(', ') : '(all)') : v]);
    const path = `/reports/${t.id}${r.query ? `?${r.query}` : ''}`;
    const doc = documentOf(r.title, filters, now, r.asOf, layout(1, [await figure(r, 860, now)], [r]));
    return { title: r.title, path, filename: `${exportFileBase(t.id, r.query)}.html`, html: (await doc).toString(), asOf: r.asOf };
  }

  const d = deps.dashboards.get(t.id);
  if (!d) throw new HttpError(404, `No dashboard "${t.id}"`);
  if (!d.roles.includes(role)) throw new HttpError(403, `Your role (${role}) does not have access to the ${d.title} dashboard`);
  const { tiles, filters } = await resolveDashboard(deps, role, d);
  const state = dashboardState(t.query, filters, now);
  const results: ReportResult[] = [];
  for (const tile of tiles) results.push(await run(tile.id, new URLSearchParams(tileQuery(tile.accepts, tile.fixedParams, state, filters, now))));
  const figures: Html[] = [];
  // a tile's width: its share of the 880 px page, less the grid's gaps
  for (const [i, r] of results.entries()) figures.push(await figure(r, Math.round(880 * Math.min(tiles[i].size, d.columns) / d.columns) - 24, now, Math.min(tiles[i].size, d.columns), tiles[i].better as 'up' | 'down' | undefined));
  const stamped: [string, string][] = filters.map((f: Filter) => {
    if (f.type === 'period') {
      const p = resolvePeriod(state, f, now);
      return [f.label ?? 'Period', `${state.from || state.to ? 'Custom range' : PERIODS[state.period ?? f.default]}: ${p.from} to ${p.to}`];
    }
    const chosen = state.choices[f.name];
    return [f.label ?? f.name, chosen?.length ? chosen.map((v) => f.options.find(([o]) => o === v)?.[1] ?? v).join(', ') : f.type === 'enum' && f.default ? f.default : '(all)'];
  });
  const query = toQuery(state, filters);
  const doc = documentOf(d.title, stamped, now, oldest(results, now), layout(d.columns, figures, results));
  return { title: d.title, path: `${t.pathname}${query ? `?${query}` : ''}`, filename: `${exportFileBase(t.id, query)}.html`, html: (await doc).toString(), asOf: oldest(results, now) };
}
