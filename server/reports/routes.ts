// HTTP surface of the report engine: the catalog and report APIs (JSON with a Vega-Lite spec, CSV streamed through
// a cursor, JSON rows), the server-rendered catalog and report pages, and the admin refresh trigger.
import { Hono, type Context } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import { page, html } from '../html.ts';
import { formBody } from '../auth/forms.ts';
import type { Catalog, ReportDef } from './catalog.ts';
import type { ParamDecl } from './params.ts';
import { hasRelativeDefault } from './params.ts';
import {
  runReport, streamCsv, parseReportParams, lookupOptions, refreshMarts, ensureMarts, martStates, refreshHistory,
  withDependents, type Role, type ReportResult,
} from './engine.ts';
import { nextFire } from './cron-time.ts';
import { exportFileBase } from '../../views/export-name.ts';

/** The catalog of this app (deps.catalog). */
export function catalogOf(c: Context<Env>): Catalog {
  return c.get('deps').catalog;
}

function roleOf(c: Context<Env>): Role {
  const user = c.get('user');
  if (!user) throw new HttpError(401, 'Sign in required');
  return user.role;
}

function rawQuery(c: Context<Env>): URLSearchParams {
  return new URL(c.req.url).searchParams;
}

function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(etag);
}

function paramInfo(p: ParamDecl) {
  return {
    name: p.name, type: p.type, label: p.label, default: p.default ?? null,
    ...(p.min !== undefined ? { min: p.min } : {}), ...(p.max !== undefined ? { max: p.max } : {}),
    ...(p.values ? { values: p.values } : {}), ...(p.lookup ? { lookup: p.lookup } : {}),
  };
}

const ID = /^([a-z0-9_]+)(?:\.(csv|json))?$/;

function freshnessHeaders(c: Context<Env>, r: { asOf: string; stale: boolean; rowCap: number; truncated: boolean }) {
  c.header('X-As-Of', r.asOf);
  c.header('X-Stale', String(r.stale));
  c.header('X-Row-Cap', String(r.rowCap));
  c.header('X-Truncated', String(r.truncated));
  c.header('Cache-Control', 'private, no-cache');
  c.header('Vary', 'Cookie');
}

export const reportRoutes = new Hono<Env>();

// the catalog answer depends only on the catalog and the role: built once per pair
const listings = new WeakMap<Catalog, Map<Role, string>>();
reportRoutes.get('/api/reports', (c) => {
  const role = roleOf(c);
  const catalog = catalogOf(c);
  let byRole = listings.get(catalog);
  if (!byRole) listings.set(catalog, (byRole = new Map()));
  let body = byRole.get(role);
  if (!body) {
    const list = [...catalog.reports.values()].filter((r) => (r.roles as string[]).includes(role))
      .sort((a, b) => a.title.localeCompare(b.title))
      .map((r) => ({
        id: r.id, title: r.title, description: r.description, definition: r.definition, marts: r.allMarts,
        params: r.params.map(paramInfo), api: `/api/reports/${r.id}`, page: `/reports/${r.id}`,
      }));
    byRole.set(role, (body = JSON.stringify({ reports: list })));
  }
  c.header('Content-Type', 'application/json; charset=UTF-8');
  return c.body(body);
});

// Mart status (staff) and the refresh trigger (admin): declared before /api/reports/:id.
reportRoutes.get('/api/marts', async (c) => {
  const catalog = catalogOf(c);
  const { db } = c.get('deps');
  const states = await martStates(db);
  const now = c.get('deps').now();
  return c.json({
    marts: catalog.martOrder.map((n) => {
      const m = catalog.marts.get(n)!, s = states.get(n);
      return {
        name: n, schedule: m.schedule, depends: m.depends, nextRefresh: nextFire(m.schedule, now)?.toISOString() ?? null,
        generation: s?.generation ?? null, asOf: s?.as_of ?? null, stale: s?.stale ?? false, lastError: s?.last_error ?? null,
        lastAttemptAt: s?.last_attempt_at ?? null, running: s?.running ?? false,
      };
    }),
    history: await refreshHistory(db, 50),
  });
});

reportRoutes.post('/api/marts/refresh', async (c) => {
  const catalog = catalogOf(c);
  let only: string[] | undefined;
  const text = await c.req.text();
  if (text.trim()) {
    let body: any;
    try { body = JSON.parse(text); } catch { throw new HttpError(400, 'The body must be JSON: {"marts": ["mart_…"]} or empty for all marts'); }
    if (body?.marts !== undefined) {
      if (!Array.isArray(body.marts) || !body.marts.every((m: unknown) => typeof m === 'string')) {
        throw new HttpError(400, 'marts must be a list of mart names', { marts: 'must be a list of mart names' });
      }
      const unknown = body.marts.filter((m: string) => !catalog.marts.has(m));
      if (unknown.length) throw new HttpError(400, `Unknown mart ${unknown.join(', ')}`, { marts: `unknown: ${unknown.join(', ')}` });
      only = body.marts;
    }
  }
  const { db, log } = c.get('deps');
  await ensureMarts(db, catalog, { log }); // a mart added since start (or a database set up without main.ts)
  const out = await refreshMarts(db, catalog, { only, cascade: true, trigger: 'admin', log, workMem: c.get('deps').config.martWorkMem });
  if (!out.ran) throw new HttpError(409, 'A refresh is already running (here or on another instance); try again when it has finished');
  return c.json({ ran: true, results: out.results }, out.results.every((r) => r.ok) ? 200 : 500);
});

reportRoutes.get('/api/reports/:id', async (c) => {
  const m = ID.exec(c.req.param('id'));
  if (!m) throw new HttpError(404, `No report named ${c.req.param('id')}`);
  const [, id, format] = m;
  const catalog = catalogOf(c);
  const { readDb, now, log, config, caches } = c.get('deps');
  const role = roleOf(c);
  const inm = c.req.header('if-none-match');
  if (format === 'csv') {
    // A download holds a pooled connection until the client has read it all: cap how many run at once, so slow or
    // abandoned downloads cannot take the connections every other request needs.
    if (csvStreams >= config.csvStreams) {
      throw new HttpError(503, `Too many CSV downloads are running (at most ${config.csvStreams}); try again in a few seconds`, undefined, { 'Retry-After': '5' });
    }
    csvStreams++;
    let released = false;
    const release = () => { if (!released) { released = true; csvStreams--; } };
    let s: Awaited<ReturnType<typeof streamCsv>>;
    try {
      s = await streamCsv(readDb, catalog, id, rawQuery(c), {
        role, now: now(), log, ifNoneMatch: (e) => matches(inm, `"${e}-csv"`),
      });
    } catch (e) {
      release();
      throw e;
    }
    if (!s.body) release();
    if (s.etag) c.header('ETag', `"${s.etag}-csv"`);
    c.header('X-As-Of', s.asOf);
    c.header('X-Stale', String(s.stale));
    c.header('X-Row-Cap', String(s.rowCap));
    c.header('X-Truncated', String(s.truncated));
    c.header('Cache-Control', 'private, no-cache');
    c.header('Vary', 'Cookie');
    if (!s.body) return c.body(null, 304);
    c.header('Content-Type', 'text/csv; charset=utf-8');
    c.header('Content-Disposition', `attachment; filename="${exportFileBase(id, s.params.query)}.csv"`);
    // Hono answers HEAD with the GET handler's headers and drops the body without cancelling it: close the cursor here.
    if (c.req.method === 'HEAD') {
      await s.body.cancel();
      release();
      return c.body(null, 200);
    }
    return c.body(releasing(s.body, release));
  }
  const r = await runReport(readDb, catalog, id, rawQuery(c), { role, now: now(), cache: caches.reports });
  const etag = `"${r.etag}-${format ?? 'api'}"`;
  freshnessHeaders(c, r);
  c.header('ETag', etag);
  if (matches(inm, etag)) return c.body(null, 304);
  c.header('Content-Type', 'application/json; charset=UTF-8');
  // a cached result reuses its rows and spec objects: serialize them once, not on every hit
  if (format === 'json') return c.body(serialized(r.rows));
  const head = JSON.stringify({
    id: r.id, title: r.title, params: r.params, query: r.query, asOf: r.asOf, nextRefresh: r.nextRefresh, stale: r.stale,
    rowCount: r.rowCount, truncated: r.truncated, rowCap: r.rowCap,
  });
  return c.body(`${head.slice(0, -1)},"spec":${serialized(r.spec)}}`);
});

/** CSV downloads in flight in this process (MARQUEE_CSV_STREAMS, default 4). */
let csvStreams = 0;

/** The same bytes; `release` runs once when the body ends, fails or is cancelled by the client. */
function releasing(body: ReadableStream<Uint8Array>, release: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const { done, value } = await reader.read();
        if (done) { release(); ctrl.close(); } else ctrl.enqueue(value);
      } catch (e) {
        release();
        ctrl.error(e);
      }
    },
    async cancel(reason) {
      release();
      await reader.cancel(reason);
    },
  }, { highWaterMark: 1 });
}

const serializedCache = new WeakMap<object, string>();
function serialized(v: object): string {
  let s = serializedCache.get(v);
  if (s === undefined) serializedCache.set(v, (s = JSON.stringify(v)));
  return s;
}

// ── pages ─────────────────────────────────────────────────────────────────────────────────────────────────────────
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

reportRoutes.get('/reports', async (c) => {
  const role = roleOf(c);
  const catalog = catalogOf(c);
  const list = [...catalog.reports.values()].filter((r) => (r.roles as string[]).includes(role)).sort((a, b) => a.title.localeCompare(b.title));
  const admin = role === 'admin' && catalog.martOrder.length
    ? html`<section class="admin-marts"><h2>Marts</h2>${await martTable(c, catalog, catalog.martOrder)}
        ${refreshForm('Refresh all marts now')}</section>` : '';
  return c.html(page(c, {
    title: 'Reports',
    body: html`<main class="reports-catalog"><h1>Reports</h1>
      <p class="muted">Every report is a SQL file in <code>sql/reports/</code>; its URL (with parameters) restores the exact view.</p>
      <ul class="report-list">${list.map((r) => html`<li><a href="/reports/${r.id}"><b>${r.title}</b></a>
        ${r.description ? html`<span class="muted"> — ${r.description}</span>` : ''}
        ${r.allMarts.length ? '' : r.catalog ? html` <span class="tag">catalog</span>` : html` <span class="tag">live</span>`}</li>`)}</ul>
      ${admin}</main>`,
  }));
});

reportRoutes.post('/reports/refresh', async (c) => {
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
  const out = await refreshMarts(db, catalog, { only: only && withDependents(catalog, only), trigger: 'admin', log, workMem: c.get('deps').config.martWorkMem });
  if (!out.ran) throw new HttpError(409, 'A refresh is already running (here or on another instance); reload the page in a moment');
  return c.redirect(next, 303);
});

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

function dataTable(r: ReportResult) {
  const cols = r.rows.length ? Object.keys(r.rows[0]) : [];
  const shown = r.rows.slice(0, TABLE_ROWS);
  return html`<details class="data-table"><summary>Data table (${r.rowCount.toLocaleString('en-US')} rows${r.truncated ? `, capped at ${r.rowCap.toLocaleString('en-US')}` : ''})</summary>
    ${r.rows.length ? html`<div class="table-scroll"><table><thead><tr>${cols.map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
      <tbody>${shown.map((row) => html`<tr>${cols.map((k) => html`<td>${cell(row[k])}</td>`)}</tr>`)}</tbody></table></div>
      ${r.rows.length > TABLE_ROWS ? html`<p class="muted">Showing the first ${TABLE_ROWS}; download the CSV for all rows.</p>` : ''}`
      : html`<p class="muted">No rows for these parameters.</p>`}</details>`;
}

async function reportPage(c: Context<Env>, report: ReportDef, opts: {
  values: Record<string, string | string[] | null>; explicit: Set<string>; errors?: Record<string, string>; result?: ReportResult; status: 200 | 400;
}) {
  const role = roleOf(c);
  const catalog = catalogOf(c);
  const { readDb } = c.get('deps');
  const options = new Map<string, [string, string][]>();
  for (const p of report.params) if (p.type === 'multi') options.set(p.name, await lookupOptions(readDb, p));
  const r = opts.result;
  const q = r?.query ? `?${r.query}` : '';
  const freshness = r ? html`<p class="freshness">${report.catalog
    ? html`Catalog as of its last titles load, <time datetime="${r.asOf}">${when(r.asOf)}</time>`
    : report.allMarts.length
    ? html`Data as of <time datetime="${r.asOf}">${when(r.asOf)}</time>${r.nextRefresh ? html` · next refresh <time datetime="${r.nextRefresh}">${when(r.nextRefresh)}</time>` : ''}`
    : html`Live query, run <time datetime="${r.asOf}">${when(r.asOf)}</time>`}
    ${r.stale ? html` · <strong class="stale">Stale: the last refresh failed; showing the last good data</strong>` : ''}
    ${r.truncated ? html` · <strong class="stale">Capped at ${r.rowCap.toLocaleString('en-US')} rows</strong>` : ''}</p>` : '';
  const admin = role === 'admin' && report.allMarts.length
    ? html`<section class="admin-marts"><h2>Marts this report reads</h2>${await martTable(c, catalog, report.allMarts)}
        ${refreshForm('Refresh this report\'s data now', report.id, `/reports/${report.id}${q}`)}</section>` : '';
  const body = html`<main class="report-page">
    <p class="crumbs"><a href="/reports">Reports</a></p>
    <h1>${report.title}</h1>
    ${report.description ? html`<p class="lead">${report.description}</p>` : ''}
    ${freshness}
    <form method="get" action="/reports/${report.id}" class="params" id="filters" aria-label="Report parameters">
      ${report.params.map((p) => field(p, opts.values[p.name] ?? null, opts.explicit.has(p.name), options.get(p.name), opts.errors?.[p.name]))}
      ${opts.errors ? Object.entries(opts.errors).filter(([k]) => !report.params.some((p) => p.name === k))
        .map(([k, v]) => html`<p class="error-message" role="alert"><b>${k}</b>: ${v}</p>`) : ''}
      <div class="actions"><button type="submit">Apply</button> <a href="/reports/${report.id}">Reset</a></div>
    </form>
    ${r ? html`<mq-chart report="${report.id}" params="${r.query}"></mq-chart>
      ${dataTable(r)}
      <p class="exports">Download: <a href="/api/reports/${report.id}.csv${q}" download>CSV</a> · <a href="/api/reports/${report.id}.json${q}">JSON</a>
        · <a href="/api/reports/${report.id}${q}">API (Vega-Lite spec)</a></p>` : ''}
    ${report.definition ? html`<section class="definition"><h2>Definition</h2><p>${report.definition}</p></section>` : ''}
    ${admin}
  </main>`;
  return c.html(page(c, { title: report.title, body, script: 'report-page', skipTo: { href: '#filters', label: 'Skip to parameters' } }), opts.status);
}

reportRoutes.get('/reports/:id', async (c) => {
  const id = c.req.param('id');
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
      return reportPage(c, report, { values, explicit: new Set(query.keys()), errors: e.fields, status: 400 });
    }
    throw e;
  }
  const raw = new URL(c.req.url).search.replace(/^\?/, '');
  if (raw !== parsed.params.query) return c.redirect(`/reports/${id}${parsed.params.query ? `?${parsed.params.query}` : ''}`, 302);
  const result = await runReport(readDb, catalog, id, query, { role, now: t, cache: c.get('deps').caches.reports });
  const explicit = new Set(new URLSearchParams(parsed.params.query).keys());
  return reportPage(c, parsed.report, { values: result.params, explicit, result, status: 200 });
});

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
