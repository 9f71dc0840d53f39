// The report engine's server-rendered pages: the catalog (/reports), one report (/reports/:id: chart, parameter form
// that works without JavaScript, data table, downloads) and the admin's refresh button (POST /reports/refresh).
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import { page, html } from '../html.ts';
import { formBody } from '../auth/forms.ts';
import type { Catalog, ReportDef } from './catalog.ts';
import { hasRelativeDefault, type ParamDecl } from './params.ts';
import {
  runParsedReport, parseReportParams, lookupOptions, refreshMarts, ensureMarts, martStates, withDependents, type ReportResult,
} from './engine.ts';
import { catalogOf, roleOf, rawQuery, pageQuery, pagesAround } from './http.ts';
import { shareLinks } from '../sharing/links.ts';
import { pageRows } from '../../views/report-data.ts';

const when = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'never');

async function martTable(c: Context<Env>, catalog: Catalog, names: string[]) {
  const states = await martStates(c.get('deps').db, names);
  return html`<table class="marts"><thead><tr><th>Mart</th><th>Schedule (UTC)</th><th>Data as of</th><th>Generation</th><th>Status</th></tr></thead>
    <tbody>${names.map((n) => {
      const s = states.get(n);
      const status = s?.running ? 'refreshing…' : s?.stale ? `stale — last refresh failed ${when(s.last_error_at)}: ${s.last_error}` : s?.as_of ? 'ok' : 'not refreshed yet';
      return html`<tr><td><code>${n}</code></td><td><code>${catalog.marts.get(n)!.schedule}</code></td><td>${when(s?.as_of)}</td>
        <td>${s?.generation ?? ''}</td><td class="${s?.stale ? 'stale' : ''}">${status}</td></tr>`;
    })}</tbody></table>`;
}

function refreshForm(label: string, report?: string, next?: string) {
  return html`<form method="post" action="/reports/refresh" class="inline refresh">
    ${report ? html`<input type="hidden" name="report" value="${report}">` : ''}
    ${next ? html`<input type="hidden" name="next" value="${next}">` : ''}
    <button type="submit">${label}</button></form>`;
}

/** GET /reports: the reports this role may run; for an admin, the marts and a button to refresh them all. */
export async function catalogPage(c: Context<Env>) {
  const role = roleOf(c);
  const catalog = catalogOf(c);
  const list = [...catalog.reports.values()].filter((r) => (r.roles as string[]).includes(role)).sort((a, b) => a.title.localeCompare(b.title));
  // the churn model's page is a dashboard of reports (views/dashboards/churn_model.json), linked from here
  const model = [...(c.get('deps').dashboards?.values() ?? [])].find((d) => d.id === 'churn_model' && d.roles.includes(role));
  const admin = role === 'admin' && catalog.martOrder.length
    ? html`<section class="admin-marts"><h2>Marts</h2>${await martTable(c, catalog, catalog.martOrder)}
        ${refreshForm('Refresh all marts now')}</section>` : '';
  return c.html(page(c, {
    title: 'Reports',
    body: html`<main class="reports-catalog"><h1>Reports</h1>
      <p class="muted">Every report is a SQL file in <code>sql/reports/</code>; its URL (with parameters) restores the exact view.</p>
      ${model ? html`<p>Model: <a href="/dashboards/churn_model"><b>${model.title}</b></a>
        <span class="muted"> — its evaluation beside a heuristic, calibration, feature weights, training history and the
        subscribers at risk.</span></p>` : ''}
      <ul class="report-list">${list.map((r) => html`<li><a href="/reports/${r.id}"><b>${r.title}</b></a>
        ${r.description ? html`<span class="muted"> — ${r.description}</span>` : ''}
        ${r.allMarts.length ? '' : r.catalog ? html` <span class="tag">catalog</span>` : html` <span class="tag">live</span>`}</li>`)}</ul>
      ${admin}</main>`,
  }));
}

/** POST /reports/refresh (the pages' button): a report's marts, or all; back to the page it came from. */
export async function refreshFromPage(c: Context<Env>) {
  const form = await formBody(c);
  const catalog = catalogOf(c);
  const reportId = typeof form.report === 'string' ? form.report : '';
  const next = typeof form.next === 'string' && /^\/reports(\/[a-z0-9_]+)?(\?[^\s]*)?$/.test(form.next) ? form.next : reportId ? `/reports/${reportId}` : '/reports';
  let only: string[] | undefined;
  if (reportId) {
    const r = catalog.reports.get(reportId);
    if (!r) throw new HttpError(400, `No report named ${reportId}`, { report: 'unknown report' });
    if (!r.allMarts.length) throw new HttpError(400, `The report ${reportId} runs live SQL: there is nothing to refresh`, { report: 'reads no mart' });
    only = r.allMarts;
  }
  const { db, log } = c.get('deps');
  await ensureMarts(db, catalog, { log });
  const out = await refreshMarts(db, catalog, { only: only && withDependents(catalog, only), trigger: 'admin', log, workMem: c.get('deps').config.martWorkMem, parallel: c.get('deps').config.martParallel });
  if (!out.ran) throw new HttpError(409, 'A refresh is already running (here or on another instance); reload the page in a moment');
  return c.redirect(next, 303);
}

function field(p: ParamDecl, value: string | string[] | null, explicit: boolean, options: [string, string][] | undefined, error?: string) {
  const id = `p-${p.name}`;
  const v = explicit && typeof value === 'string' ? value : '';
  const hint = p.default !== undefined
    ? `default ${describeDefault(String(p.default))}${hasRelativeDefault(p) && typeof value === 'string' && !explicit ? ` (${value})` : ''}` : 'optional';
  let control;
  switch (p.type) {
    case 'date': control = html`<input id="${id}" type="date" name="${p.name}" value="${v}" ${p.min && !/[dmy]$/.test(p.min) ? html`min="${p.min}"` : ''}>`; break;
    case 'month': control = html`<input id="${id}" type="month" name="${p.name}" value="${v}">`; break;
    case 'int': control = html`<input id="${id}" type="number" step="1" name="${p.name}" value="${v}" ${p.min ? html`min="${p.min}"` : ''} ${p.max ? html`max="${p.max}"` : ''}>`; break;
    case 'boolean':
    case 'enum': {
      const opts = p.type === 'boolean' ? ['true', 'false'] : p.values!;
      control = html`<select id="${id}" name="${p.name}"><option value="">(default)</option>
        ${opts.map((o) => html`<option value="${o}" ${explicit && value === o ? 'selected' : ''}>${o}</option>`)}</select>`;
      break;
    }
    case 'multi': {
      const chosen = new Set(explicit && Array.isArray(value) ? value : []);
      control = html`<select id="${id}" name="${p.name}" multiple size="${Math.min(6, Math.max(2, options?.length ?? 2))}">
        ${(options ?? []).map(([o, label]) => html`<option value="${o}" ${chosen.has(o) ? 'selected' : ''}>${label}</option>`)}</select>`;
      break;
    }
  }
  return html`<div class="field${error ? ' invalid' : ''}"><label for="${id}">${p.label}</label>${control}
    <small class="muted">${hint}</small>${error ? html`<small class="error-message" role="alert">${error}</small>` : ''}</div>`;
}

const TABLE_ROWS = 500;
function cell(v: unknown) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 4 });
  if (v instanceof Date) return v.toISOString();
  // operational lists (the billing reports) name the admin page of each subscription: a link on the page
  if (typeof v === 'string' && /^\/admin\/subscribers\/\d+$/.test(v)) return html`<a href="${v}">${v}</a>`;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Which rows a paged answer holds, and links to the pages beside it (the form's other values kept). */
function pager(report: ReportDef, r: ReportResult) {
  if (r.page === null) return '';
  const { prev, next } = pagesAround(report, r);
  const href = (q: string) => `/reports/${report.id}${q ? `?${q}` : ''}`;
  return html`<nav class="pager" aria-label="Pages of rows">
    ${prev !== undefined ? html`<a rel="prev" href="${href(prev)}">‹ Previous</a>` : ''}
    <span>Page ${r.page} · ${pageRows(r.page, report.pageSize, r.rowCount)}${next === undefined && !r.truncated ? ' (the last)' : ''}</span>
    ${next !== undefined ? html`<a rel="next" href="${href(next)}">Next ›</a>` : ''}
  </nav>`;
}

function dataTable(r: ReportResult) {
  const cols = r.rows.length ? Object.keys(r.rows[0]) : [];
  // a page of a paged report is shown whole: its size is the report's choice
  const shown = r.page === null ? r.rows.slice(0, TABLE_ROWS) : r.rows;
  const capped = r.truncated && r.page === null;
  return html`<details class="data-table"><summary>Data table (${r.rowCount.toLocaleString('en-US')} rows${capped ? `, capped at ${r.rowCap.toLocaleString('en-US')}` : ''}${r.page !== null ? ` on page ${r.page}` : ''})</summary>
    ${r.rows.length ? html`<div class="table-scroll"><table><thead><tr>${cols.map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
      <tbody>${shown.map((row) => html`<tr>${cols.map((k) => html`<td>${cell(row[k])}</td>`)}</tr>`)}</tbody></table></div>
      ${shown.length < r.rows.length ? html`<p class="muted">Showing the first ${TABLE_ROWS}; download the CSV for all rows.</p>` : ''}`
      : html`<p class="muted">No rows for these parameters.</p>`}</details>`;
}

async function renderReport(c: Context<Env>, report: ReportDef, opts: {
  values: Record<string, string | string[] | null>; explicit: Set<string>; errors?: Record<string, string>; result?: ReportResult; status: 200 | 400;
}) {
  const role = roleOf(c);
  const catalog = catalogOf(c);
  const { readDb } = c.get('deps');
  const options = new Map<string, [string, string][]>();
  for (const p of report.params) if (p.type === 'multi') options.set(p.name, await lookupOptions(readDb, p));
  const r = opts.result;
  const q = r?.query ? `?${r.query}` : '';
  // a CSV is never paged: its link leaves the page out
  const csvQuery = r && r.page !== null ? pageQuery(r.query, 1) : r?.query ?? '';
  // past the last page within @rowcap (a paged report) or past @rowcap: rows were cut
  const capped = r && r.truncated && (r.page === null || pagesAround(report, r).next === undefined);
  const freshness = r ? html`<p class="freshness">${report.catalog
    ? html`Catalog as of its last titles load, <time datetime="${r.asOf}">${when(r.asOf)}</time>`
    : report.allMarts.length
    ? html`Data as of <time datetime="${r.asOf}">${when(r.asOf)}</time>${r.nextRefresh ? html` · next refresh <time datetime="${r.nextRefresh}">${when(r.nextRefresh)}</time>` : ''}`
    : html`Live query, run <time datetime="${r.asOf}">${new Date(r.asOf).toISOString().replace('T', ' ').slice(0, 19)} UTC</time>${report.maxAgeMs ? ` (results are kept up to ${report.maxAgeMs / 1000} s)` : ''}`}
    ${r.stale ? html` · <strong class="stale">Stale: the last refresh failed; showing the last good data</strong>` : ''}
    ${capped ? html` · <strong class="stale">Capped at ${report.rowCap.toLocaleString('en-US')} rows</strong>` : ''}</p>` : '';
  const admin = role === 'admin' && report.allMarts.length
    ? html`<section class="admin-marts"><h2>Marts this report reads</h2>${await martTable(c, catalog, report.allMarts)}
        ${refreshForm('Refresh this report\'s data now', report.id, `/reports/${report.id}${q}`)}</section>` : '';
  const body = html`<main class="report-page">
    <p class="crumbs"><a href="/reports">Reports</a></p>
    <h1>${report.title}</h1>
    ${report.description ? html`<p class="lead">${report.description}</p>` : ''}
    ${freshness}
    <form method="get" action="/reports/${report.id}" class="params" id="filters" aria-label="Report parameters">
      ${report.params.filter((p) => !(report.pageSize && p.name === 'page')).map((p) => field(p, opts.values[p.name] ?? null, opts.explicit.has(p.name), options.get(p.name), opts.errors?.[p.name]))}
      ${opts.errors ? Object.entries(opts.errors).filter(([k]) => !report.params.some((p) => p.name === k))
        .map(([k, v]) => html`<p class="error-message" role="alert"><b>${k}</b>: ${v}</p>`) : ''}
      <div class="actions"><button type="submit">Apply</button> <a href="/reports/${report.id}">Reset</a></div>
    </form>
    ${r ? html`<mq-chart report="${report.id}" params="${r.query}"></mq-chart>
      ${pager(report, r)}
      ${dataTable(r)}
      <p class="exports">Download: <a href="/api/reports/${report.id}.csv${csvQuery ? `?${csvQuery}` : ''}" download>CSV${report.pageSize ? ' (every page)' : ''}</a> · <a href="/api/reports/${report.id}.json${q}">JSON</a>
        · <a href="/api/reports/${report.id}${q}">API (Vega-Lite spec)</a></p>${shareLinks(c, 'report', report.id, r.query)}` : ''}
    ${report.definition ? html`<section class="definition"><h2>Definition</h2><p>${report.definition}</p></section>` : ''}
    ${admin}
  </main>`;
  return c.html(page(c, { title: report.title, body, script: 'report-page', skipTo: { href: '#filters', label: 'Skip to parameters' } }), opts.status);
}

/** GET /reports/:id: role and parameters are parsed once; a non-canonical URL redirects, bad parameters show the form
 *  with each field's error (400), else the report runs. */
export async function reportPage(c: Context<Env>) {
  const id = c.req.param('id')!;
  const catalog = catalogOf(c);
  const { readDb, now } = c.get('deps');
  const role = roleOf(c);
  const query = rawQuery(c);
  const t = now();
  let parsed;
  try {
    parsed = await parseReportParams(readDb, catalog, id, query, { role, now: t });
  } catch (e) {
    if (e instanceof HttpError && e.status === 400 && e.fields) {
      const report = catalog.reports.get(id)!;
      const values: Record<string, string | string[] | null> = {};
      for (const p of report.params) {
        const all = query.getAll(p.name).filter((v) => v.trim() !== '');
        values[p.name] = p.type === 'multi' ? all : all[0] ?? null;
      }
      return renderReport(c, report, { values, explicit: new Set(query.keys()), errors: e.fields, status: 400 });
    }
    throw e;
  }
  const raw = new URL(c.req.url).search.replace(/^\?/, '');
  if (raw !== parsed.params.query) return c.redirect(`/reports/${id}${parsed.params.query ? `?${parsed.params.query}` : ''}`, 302);
  const result = await runParsedReport(readDb, catalog, parsed, { role, now: t, cache: c.get('deps').caches.reports });
  const explicit = new Set(new URLSearchParams(parsed.params.query).keys());
  return renderReport(c, parsed.report, { values: result.params, explicit, result, status: 200 });
}

/** '-11m' -> '11 months ago', '0m' -> 'this month', '-30d' -> '30 days ago': what the form shows as the default. */
function describeDefault(d: string): string {
  const m = /^([+-]?\d+)([md])$/.exec(d);
  if (!m) return d;
  const n = Number(m[1]);
  const unit = m[2] === 'm' ? 'month' : 'day';
  if (n === 0) return unit === 'month' ? 'this month' : 'today';
  const abs = Math.abs(n);
  return `${abs} ${unit}${abs === 1 ? '' : 's'} ${n < 0 ? 'ago' : 'ahead'}`;
}
