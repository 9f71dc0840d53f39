// GET /dashboards (the dashboards the caller's role may see, with their reports) and GET /dashboards/:id — the
// URL is the state: ?period=6m or ?from=2026-01&to=2026-06, plus choice filters (?plan=premium&plan=standard).
// Non-canonical URLs (the plain GET form sends empty fields) redirect to the canonical one. The filter form works
// without JavaScript; with it, views/mq-filter-bar.ts updates the URL in place and refetches only affected tiles.
import { Hono } from 'hono';
import type { Context } from 'hono';
import type { AppDeps, Env } from '../types.ts';
import type { Role } from '../auth/access.ts';
import type { Db } from '../db/index.ts';
import { page, html, type Html } from '../html.ts';
import { HttpError, notFound } from '../errors.ts';
import { assetUrl } from '../assets.ts';
import { lookupOptions, type Catalog, type ReportDef } from '../reports/engine.ts';
import type { ParamDecl } from '../reports/params.ts';
import type { Dashboard, FilterDecl } from './catalog.ts';
import { shareLinks } from '../sharing/links.ts';
import {
  type Filter, type FilterState, PERIODS, FilterError, parseState, toQuery, tileQuery, resolvePeriod,
} from '../../views/filters.ts';

/** The report catalog this app serves (deps.catalog). */
export function reports(c: Context<Env>): Catalog {
  return c.get('deps').catalog;
}

/** The dashboards this app serves (deps.dashboards: views/dashboards or MARQUEE_DASHBOARDS_DIR, checked at start). */
export function dashboards(c: Context<Env>): Map<string, Dashboard> {
  return c.get('deps').dashboards;
}

/** Choices of a filter: its own list, or those of the first tile report declaring a parameter of that name. */
async function optionsOf(db: Db, f: FilterDecl, params: ParamDecl[]): Promise<[string, string][]> {
  if (f.values) return f.values.map((v) => [v, v]);
  const decl = params.find((p) => p.name === f.name && p.type === 'multi' || p.name === f.name && p.type === 'enum');
  return decl ? lookupOptions(db, decl) : [];
}

interface ResolvedTile { report: ReportDef | undefined; id: string; size: number; fixed: string; accepts: string[]; height?: number; better?: string; fixedParams: Record<string, string | string[]> }

/** A dashboard's tiles the role may run and its filters with their choices (the page and its snapshot, server/sharing). */
export async function resolveDashboard(deps: Pick<AppDeps, 'catalog' | 'readDb'>, role: Role, d: Dashboard) {
  const catalog = deps.catalog;
  const tiles: ResolvedTile[] = d.tiles
    .map((t) => ({ t, r: catalog.reports.get(t.report) }))
    // A tile whose report this role may not run is left out rather than shown as an error.
    .filter(({ r }) => !r || (r.roles as string[]).includes(role))
    .map(({ t, r }) => {
      const fixed = new URLSearchParams();
      for (const [k, v] of Object.entries(t.params)) for (const one of Array.isArray(v) ? v : [v]) fixed.append(k, one);
      return { report: r, id: t.report, size: t.size, height: t.height, better: t.better, fixed: fixed.toString(), fixedParams: t.params, accepts: r?.params.map((p) => p.name) ?? [] };
    });
  const allParams = tiles.flatMap((t) => t.report?.params ?? []);
  const db = deps.readDb;
  const filters: Filter[] = [];
  for (const f of d.filters) {
    if (f.type === 'period') filters.push({ name: 'period', type: 'period', label: f.label, default: f.default as keyof typeof PERIODS });
    else filters.push({ name: f.name, type: f.type, label: f.label, default: f.default, options: await optionsOf(db, f, allParams) });
  }
  return { tiles, filters };
}

/** A dashboard's filter state from a query (the page's, its snapshot's, an embed's); a bad filter is a 400 naming it. */
export function dashboardState(query: URLSearchParams, filters: Filter[], now: Date): FilterState {
  try {
    return parseState(query, filters, now);
  } catch (e) {
    if (e instanceof FilterError) throw new HttpError(400, `Invalid filter: ${e.message}`, { [e.field]: e.message });
    throw e;
  }
}

export const dashboardRoutes = new Hono<Env>();

dashboardRoutes.get('/dashboards', (c) => {
  const role = c.get('user')!.role;
  const catalog = reports(c);
  const visible = [...dashboards(c).values()].filter((d) => d.roles.includes(role));
  return c.html(page(c, {
    title: 'Dashboards',
    body: html`<main class="dashboards-index">
      <h1>Dashboards</h1>
      ${visible.length ? html`<ul class="dashboard-list">${visible.map((d) => html`<li class="card">
        <h2><a href="/dashboards/${d.id}">${d.title}</a></h2>
        ${d.description ? html`<p class="muted">${d.description}</p>` : ''}
        <details><summary>${d.tiles.length} reports</summary><ul class="report-links">${[...new Set(d.tiles.map((t) => t.report))].map((id) => {
          const r = catalog.reports.get(id);
          return r && (r.roles as string[]).includes(role) ? html`<li><a href="/reports/${id}">${r.title}</a></li>` : '';
        })}</ul></details>
      </li>`)}</ul>` : html`<p class="muted">No dashboard is shared with your role (${role}).</p>`}
    </main>`,
  }));
});

dashboardRoutes.get('/dashboards/:id', async (c) => {
  const d = dashboards(c).get(c.req.param('id'));
  const user = c.get('user')!;
  if (!d) throw notFound(`No dashboard "${c.req.param('id')}"`);
  if (!d.roles.includes(user.role)) throw new HttpError(403, `Your role (${user.role}) does not have access to the ${d.title} dashboard`);
  const { tiles, filters } = await resolveDashboard(c.get('deps'), user.role, d);
  const url = new URL(c.req.url);
  const state = dashboardState(url.searchParams, filters, c.get('deps').now());
  const canonical = toQuery(state, filters);
  if (canonical !== url.searchParams.toString()) return c.redirect(`/dashboards/${d.id}${canonical ? `?${canonical}` : ''}`, 302);
  const now = c.get('deps').now();
  return c.html(page(c, {
    title: d.title,
    script: 'dashboard-page',
    skipTo: { href: '#filters', label: 'Skip to filters' },
    // The tiles' data and the chart library start downloading with the page, not after the scripts ran.
    body: html`<link rel="modulepreload" href="${assetUrl('vega-render.js')}">
    ${tiles.map((t) => {
      const q = tileQuery(t.accepts, t.fixedParams, state, filters, now);
      return html`<link rel="preload" as="fetch" crossorigin="anonymous" href="/api/reports/${t.id}${q ? `?${q}` : ''}">`;
    })}
    <main class="dashboard">
      <div class="dashboard-head"><h1>${d.title}</h1>${d.description ? html`<p class="muted">${d.description}</p>` : ''}${shareLinks(c, 'dashboard', d.id, canonical)}</div>
      <mq-dashboard columns="${d.columns}" filters="${JSON.stringify(filters)}">
        ${filterBar(d, filters, state, now)}
        ${tiles.map((t) => html`<mq-chart class="tile size-${t.size}" report="${t.id}"
          params="${tileQuery(t.accepts, t.fixedParams, state, filters, now)}" accepts="${t.accepts.join(' ')}"
          ${t.fixed ? html`fixed="${t.fixed}"` : ''} ${t.height ? html`height="${t.height}"` : ''} ${t.better ? html`better="${t.better}"` : ''}></mq-chart>`)}
      </mq-dashboard>
      <noscript><div class="card"><p>The charts need JavaScript. Each tile's report, with these filters:</p><ul>
        ${tiles.map((t) => {
          const q = tileQuery(t.accepts, t.fixedParams, state, filters, now);
          return html`<li><a href="/reports/${t.id}${q ? `?${q}` : ''}">${t.report?.title ?? t.id}</a>
            (<a href="/api/reports/${t.id}.csv${q ? `?${q}` : ''}">CSV</a>)</li>`;
        })}</ul></div></noscript>
    </main>`,
  }));
});

function filterBar(d: Dashboard, filters: Filter[], state: FilterState, now: Date): Html {
  const action = `/dashboards/${d.id}`;
  const period = filters.find((f) => f.type === 'period');
  const fixed = !!(state.from || state.to);
  const resolved = period && period.type === 'period' ? resolvePeriod(state, period, now) : undefined;
  const active = fixed ? '' : state.period ?? (period?.type === 'period' ? period.default : '');
  const hrefFor = (p: string) => {
    const q = toQuery({ ...state, from: undefined, to: undefined, period: p as FilterState['period'] }, filters);
    return `${action}${q ? `?${q}` : ''}`;
  };
  return html`<mq-filter-bar slot="filters" filters="${JSON.stringify(filters)}">
    <form method="get" action="${action}" class="filter-form" id="filters" aria-label="Dashboard filters">
      ${period && resolved ? html`
      <div class="filter-group periods" role="group" aria-label="${period.label}">
        ${Object.entries(PERIODS).map(([p, label]) => html`<a class="chip" data-period="${p}" href="${hrefFor(p)}"
          ${p === active ? html`aria-current="true"` : ''}>${label}</a>`)}
      </div>
      <div class="filter-group months">
        <label>From <input type="month" name="from" value="${resolved.from}"></label>
        <label>To <input type="month" name="to" value="${resolved.to}"></label>
        <input type="hidden" name="period" value="${state.period ?? period.default}">
      </div>` : ''}
      ${filters.map((f) => f.type === 'period' || !f.options.length ? '' : f.type === 'multi' && f.options.length > 20
        ? html`<label class="filter-group many">${f.label} <select name="${f.name}" multiple size="4">
            ${f.options.map(([v, label]) => html`<option value="${v}" ${state.choices[f.name]?.includes(v) ? html`selected` : ''}>${label}</option>`)}
          </select></label>`
        : f.type === 'multi'
        ? html`<fieldset class="filter-group choice"><legend>${f.label}</legend>
            ${f.options.map(([v, label]) => html`<label class="check"><input type="checkbox" name="${f.name}" value="${v}"
              ${state.choices[f.name]?.includes(v) ? html`checked` : ''}> ${label}</label>`)}</fieldset>`
        : html`<label class="filter-group">${f.label} <select name="${f.name}">
            ${f.options.map(([v, label]) => html`<option value="${v}" ${(state.choices[f.name]?.[0] ?? f.default) === v ? html`selected` : ''}>${label}</option>`)}
          </select></label>`)}
      <div class="filter-group actions">
        <button type="submit" class="apply">Apply</button>
        <a class="reset" href="${action}" ${toQuery(state, filters) === '' ? html`hidden` : ''}>Reset</a>
      </div>
      ${resolved ? html`<output class="resolved" aria-live="polite">${fixed ? 'Custom range' : PERIODS[active as keyof typeof PERIODS]}: ${resolved.from} to ${resolved.to}</output>` : ''}
    </form>
  </mq-filter-bar>`;
}
