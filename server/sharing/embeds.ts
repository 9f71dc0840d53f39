// Signed embed links (README "Sharing: embeds and API tokens"): an admin or manager makes a link to one report or
// dashboard with locked parameters, parameters the viewer may change, an expiry of at most 7 days and an optional
// allowed origin (the page's CSP frame-ancestors). The link is a JWT (jose, HS256 only, with the signing key's id in
// its header so keys rotate: MARQUEE_EMBED_KEYS, first key signs; default a key kept in embed_keys). /embed/… renders
// that resource alone with the normal page and chart components, as its creator's role, without a session; each page
// view is logged in embed_views. Refused with 403: a bad signature, another algorithm (alg none included), an unknown
// key id, another resource, a changed locked parameter, a parameter the link does not free, a revoked link or a
// disabled creator. An expired link gets a 410 "link expired" page.
import { Hono, type Context } from 'hono';
import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { randomBytes, randomUUID } from 'node:crypto';
import sql from 'sql-template-tag';
import type { AppDeps, Env } from '../types.ts';
import type { Db } from '../db/index.ts';
import { type EmbedKey, parseOrigin } from '../config.ts';
import { HttpError, notFound } from '../errors.ts';
import { page, html, type Html } from '../html.ts';
import { framablePolicy } from '../security.ts';
import { clientIp } from '../auth/client-ip.ts';
import { field, formBody, formError, notice, selectField, type FieldErrors } from '../auth/forms.ts';
import { writeAudit, auditContext } from '../admin/audit.ts';
import type { Role } from '../auth/access.ts';
import { runReport, parseReportParams, lookupOptions, type ReportResult } from '../reports/engine.ts';
import type { ParamDecl } from '../reports/params.ts';
import { resolveDashboard, dashboardState } from '../dashboards/index.ts';
import { PERIODS, FilterError, parseState, toQuery, tileQuery, type Filter } from '../../views/filters.ts';

export const MAX_EMBED_DAYS = 7;
const ALG = 'HS256';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type Kind = 'report' | 'dashboard';
/** What a token says: the resource, its locked parameters (name -> values) and the names a viewer may change. */
export interface EmbedClaims { res: string; lock: Record<string, string[]>; free: string[]; origin: string | null }

// ── keys ──────────────────────────────────────────────────────────────────────────────────────────────────────────

const storedKeys = new WeakMap<Db, Promise<EmbedKey[]>>();

/** The keys tokens are signed (first) and verified with: the configured ones, else the database's (made on first use). */
export function embedKeys(deps: Pick<AppDeps, 'db' | 'config'>): Promise<EmbedKey[]> {
  if (deps.config.embedKeys.length) return Promise.resolve(deps.config.embedKeys);
  let p = storedKeys.get(deps.db);
  if (!p) {
    p = (async () => {
      // One fixed key id: instances starting together conflict on it, the first insert wins (the others wait for its
      // commit and insert nothing), and all of them then read the same secret.
      await deps.db.query(sql`INSERT INTO embed_keys (kid, secret) VALUES ('generated-1', ${randomBytes(32)}) ON CONFLICT (kid) DO NOTHING`);
      const rows = await deps.db.query<{ kid: string; secret: Buffer }>(sql`SELECT kid, secret FROM embed_keys ORDER BY created_at, kid`);
      return rows.map((r) => ({ kid: r.kid, secret: new Uint8Array(r.secret) }));
    })();
    p.catch(() => storedKeys.delete(deps.db));
    storedKeys.set(deps.db, p);
  }
  return p;
}

export async function signEmbed(deps: Pick<AppDeps, 'db' | 'config'>, linkId: string, claims: EmbedClaims, issued: Date, expires: Date): Promise<string> {
  const [key] = await embedKeys(deps);
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
    .setJti(linkId)
    .setIssuedAt(Math.floor(issued.getTime() / 1000))
    .setExpirationTime(Math.floor(expires.getTime() / 1000))
    .sign(key.secret);
}

/** A token's claims, or an HttpError: 410 when it expired (and is otherwise genuine), 403 for everything else. */
export async function verifyEmbed(deps: Pick<AppDeps, 'db' | 'config'>, token: string, now: Date): Promise<EmbedClaims & { jti: string }> {
  const keys = await embedKeys(deps);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, (header) => {
      const key = keys.find((k) => k.kid === header.kid);
      if (!key) throw new joseErrors.JWKSNoMatchingKey();
      return key.secret;
    }, { algorithms: [ALG], currentDate: now, requiredClaims: ['jti', 'exp', 'iat'] }));
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) throw new HttpError(410, 'This embed link has expired. Ask whoever shared it for a new one.');
    throw new HttpError(403, 'This embed link is not valid (its signature or form is wrong)');
  }
  const p = payload as JWTPayload & Partial<EmbedClaims>;
  const lockOk = p.lock && typeof p.lock === 'object' && Object.values(p.lock).every((v) => Array.isArray(v) && v.every((x) => typeof x === 'string'));
  if (typeof p.res !== 'string' || !lockOk || !Array.isArray(p.free) || typeof p.jti !== 'string' || !UUID.test(p.jti)) {
    throw new HttpError(403, 'This embed link is not valid (its claims are malformed)');
  }
  return { res: p.res, lock: p.lock!, free: p.free.map(String), origin: typeof p.origin === 'string' ? p.origin : null, jti: p.jti };
}

// ── what a resource accepts ──────────────────────────────────────────────────────────────────────────────────────

/** The parameter names a link to the resource may lock or free: a report's parameters, a dashboard's filters. */
function acceptedNames(kind: Kind, params: ParamDecl[] | undefined, filters: Filter[] | undefined): string[] {
  if (kind === 'report') return (params ?? []).map((p) => p.name);
  return (filters ?? []).flatMap((f) => f.type === 'period' ? ['period', 'from', 'to'] : [f.name]);
}

/**
 * The query a view runs with: the locked values, plus the viewer's values for freed names. A locked name sent with
 * other values, or a name the link does not free, is a 403 (the link decides; the viewer cannot widen it).
 */
export function viewQuery(claims: EmbedClaims, query: URLSearchParams): URLSearchParams {
  const out = new URLSearchParams();
  for (const [k, vs] of Object.entries(claims.lock)) for (const v of vs) out.append(k, v);
  for (const name of new Set(query.keys())) {
    if (name === 't') continue;
    const values = query.getAll(name);
    if (name in claims.lock) {
      if (values.length !== claims.lock[name].length || values.some((v, i) => v !== claims.lock[name][i])) {
        throw new HttpError(403, `The parameter ${name} is locked by this embed link`);
      }
    } else if (claims.free.includes(name)) {
      for (const v of values) if (v.trim() !== '') out.append(name, v);
    } else {
      throw new HttpError(403, `The parameter ${name} cannot be changed on this embed link`);
    }
  }
  return out;
}

// ── opening a link ────────────────────────────────────────────────────────────────────────────────────────────────

interface LinkRow { id: string; created_by: number; expires_at: Date; revoked_at: Date | null; role: Role; status: string; creator: string }

interface Opened { claims: EmbedClaims; link: LinkRow; query: URLSearchParams; token: string }

async function openLink(c: Context<Env>, kind: Kind, id: string): Promise<Opened> {
  const deps = c.get('deps');
  const token = c.req.query('t');
  if (!token) throw new HttpError(403, 'This embed link has no token (the t parameter)');
  const claims = await verifyEmbed(deps, token, deps.now());
  if (claims.res !== `${kind}:${id}`) throw new HttpError(403, `This embed link is for another resource (${claims.res})`);
  const link = await deps.db.one<LinkRow>(sql`SELECT l.id, l.created_by, l.expires_at, l.revoked_at, u.role, u.status, u.email AS creator
    FROM embed_links l JOIN users u ON u.id = l.created_by WHERE l.id = ${claims.jti}::uuid`);
  if (!link) throw new HttpError(403, 'This embed link does not exist (any more)');
  if (link.revoked_at) throw new HttpError(403, 'This embed link was revoked');
  if (link.status !== 'active') throw new HttpError(403, 'Whoever shared this embed link can no longer share it');
  // What the viewer sees is the link's creator's view, with the creator's current role.
  return { claims, link, query: viewQuery(claims, new URL(c.req.url).searchParams), token };
}

function frameable(c: Context<Env>, claims: EmbedClaims) {
  c.header('Content-Security-Policy', framablePolicy(claims.origin ? [claims.origin] : ["'self'"]));
  c.header('Cache-Control', 'private, no-store');
  c.header('Referrer-Policy', 'no-referrer'); // the token is in the URL: links followed from the page must not carry it
}

async function logView(c: Context<Env>, link: LinkRow) {
  const deps = c.get('deps');
  const where = (c.req.header('referer') ?? c.req.header('origin') ?? null)?.slice(0, 500) ?? null;
  await deps.db.query(sql`INSERT INTO embed_views (link_id, viewed_at, referrer, ip, user_agent)
    VALUES (${link.id}::uuid, ${deps.now()}, ${where}, ${clientIp(c)}::inet, ${c.req.header('user-agent')?.slice(0, 400) ?? null})`);
}

const when = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'never');

/** The report answer as GET /api/reports/:id gives it (head fields and the Vega-Lite spec): what <mq-chart> reads. */
function apiAnswer(r: ReportResult) {
  return { id: r.id, title: r.title, params: r.params, query: r.query, asOf: r.asOf, nextRefresh: r.nextRefresh, stale: r.stale,
    rowCount: r.rowCount, truncated: r.truncated, rowCap: r.rowCap, ...(r.page !== null ? { page: r.page } : {}), spec: r.spec };
}

/** A GET form for the freed names, the token kept: what a viewer may change, nothing else. */
function freeForm(action: string, token: string, controls: Html[]): Html | string {
  if (!controls.length) return '';
  return html`<form method="get" action="${action}" class="params" id="filters" aria-label="Parameters you may change">
    <input type="hidden" name="t" value="${token}">${controls}
    <div class="actions"><button type="submit">Apply</button></div></form>`;
}

function paramControl(p: ParamDecl, value: string | string[] | null, options: [string, string][]): Html {
  const id = `p-${p.name}`;
  const v = typeof value === 'string' ? value : '';
  const input = (type: string) => html`<input id="${id}" type="${type}" name="${p.name}" value="${v}">`;
  const control = p.type === 'month' ? input('month') : p.type === 'date' ? input('date') : p.type === 'int' ? input('number')
    : p.type === 'multi' ? html`<select id="${id}" name="${p.name}" multiple size="${Math.min(6, Math.max(2, options.length))}">
        ${options.map(([o, label]) => html`<option value="${o}" ${Array.isArray(value) && value.includes(o) ? 'selected' : ''}>${label}</option>`)}</select>`
    : html`<select id="${id}" name="${p.name}">${(p.type === 'boolean' ? ['true', 'false'] : p.values ?? [])
        .map((o) => html`<option value="${o}" ${value === o ? 'selected' : ''}>${o}</option>`)}</select>`;
  return html`<div class="field"><label for="${id}">${p.label}</label>${control}</div>`;
}

function lockedNote(claims: EmbedClaims): Html | string {
  const entries = Object.entries(claims.lock);
  return entries.length ? html`<p class="muted">Fixed by this link: ${entries.map(([k, vs], i) => html`${i ? ', ' : ''}<code>${k}=${vs.join(',')}</code>`)}</p>` : '';
}

function footer(link: LinkRow): Html {
  return html`<p class="muted embed-credit">Shared from Marquee · this link expires ${when(link.expires_at)}</p>`;
}

export const embedRoutes = new Hono<Env>();

embedRoutes.get('/embed/reports/:id', async (c) => {
  const id = c.req.param('id');
  const o = await openLink(c, 'report', id);
  const deps = c.get('deps');
  const report = deps.catalog.reports.get(id);
  if (!report) throw notFound(`No report named ${id}`);
  const r = await runReport(deps.readDb, deps.catalog, id, o.query, { role: o.link.role, now: deps.now(), cache: deps.caches.reports });
  const controls: Html[] = [];
  for (const p of report.params) {
    if (!o.claims.free.includes(p.name)) continue;
    controls.push(paramControl(p, r.params[p.name] ?? null, p.type === 'multi' ? await lookupOptions(deps.readDb, p) : []));
  }
  await logView(c, o.link);
  frameable(c, o.claims);
  const src = `/embed/reports/${id}/data?t=${encodeURIComponent(o.token)}`;
  return c.html(page(c, {
    title: report.title, script: 'report-page', bare: true,
    body: html`<main class="report-page embed">
      <h1>${report.title}</h1>
      ${report.description ? html`<p class="lead">${report.description}</p>` : ''}
      <p class="freshness">${report.catalog ? html`Catalog as of its last titles load, <time datetime="${r.asOf}">${when(r.asOf)}</time>`
        : report.allMarts.length ? html`Data as of <time datetime="${r.asOf}">${when(r.asOf)}</time>`
        : html`Live query, run <time datetime="${r.asOf}">${when(r.asOf)}</time>`}${r.stale ? html` · <strong class="stale">Stale</strong>` : ''}</p>
      ${lockedNote(o.claims)}
      ${freeForm(`/embed/reports/${id}`, o.token, controls)}
      <mq-chart report="${id}" params="${r.query}" src="${src}"></mq-chart>
      ${footer(o.link)}
    </main>`,
  }));
});

embedRoutes.get('/embed/reports/:id/data', async (c) => {
  const id = c.req.param('id');
  const o = await openLink(c, 'report', id);
  const deps = c.get('deps');
  const r = await runReport(deps.readDb, deps.catalog, id, o.query, { role: o.link.role, now: deps.now(), cache: deps.caches.reports });
  c.header('Cache-Control', 'private, no-store');
  return c.json(apiAnswer(r));
});

async function dashboardView(c: Context<Env>, id: string) {
  const o = await openLink(c, 'dashboard', id);
  const deps = c.get('deps');
  const d = deps.dashboards.get(id);
  if (!d) throw notFound(`No dashboard "${id}"`);
  if (!d.roles.includes(o.link.role)) throw new HttpError(403, `Whoever shared this link may no longer see the ${d.title} dashboard`);
  const { tiles, filters } = await resolveDashboard(c.get('deps'), o.link.role, d);
  const now = deps.now();
  const state = dashboardState(o.query, filters, now);
  return { o, d, tiles, filters, state, now, stateQuery: toQuery(state, filters) };
}

embedRoutes.get('/embed/dashboards/:id', async (c) => {
  const id = c.req.param('id');
  const v = await dashboardView(c, id);
  const free = new Set(v.o.claims.free);
  const controls: Html[] = [];
  for (const f of v.filters) {
    if (f.type === 'period') {
      if (free.has('period')) controls.push(html`<div class="field"><label for="p-period">Period</label><select id="p-period" name="period">
        ${Object.entries(PERIODS).map(([p, label]) => html`<option value="${p}" ${(v.state.period ?? f.default) === p ? 'selected' : ''}>${label}</option>`)}</select></div>`);
      for (const n of ['from', 'to'] as const) {
        if (free.has(n)) controls.push(html`<div class="field"><label for="p-${n}">${n === 'from' ? 'From' : 'To'}</label>
          <input id="p-${n}" type="month" name="${n}" value="${v.state[n] ?? ''}"></div>`);
      }
    } else if (free.has(f.name)) {
      const chosen = v.state.choices[f.name] ?? [];
      controls.push(html`<div class="field"><label for="p-${f.name}">${f.label}</label><select id="p-${f.name}" name="${f.name}" ${f.type === 'multi' ? html`multiple size="${Math.min(6, Math.max(2, f.options.length))}"` : ''}>
        ${f.options.map(([o, label]) => html`<option value="${o}" ${chosen.includes(o) ? 'selected' : ''}>${label}</option>`)}</select></div>`);
    }
  }
  await logView(c, v.o.link);
  frameable(c, v.o.claims);
  const t = encodeURIComponent(v.o.token);
  return c.html(page(c, {
    title: v.d.title, script: 'dashboard-page', bare: true,
    body: html`<main class="dashboard embed">
      <div class="dashboard-head"><h1>${v.d.title}</h1>${v.d.description ? html`<p class="muted">${v.d.description}</p>` : ''}</div>
      ${lockedNote(v.o.claims)}
      ${freeForm(`/embed/dashboards/${v.d.id}`, v.o.token, controls)}
      <mq-dashboard columns="${v.d.columns}">
        ${v.tiles.map((tile, i) => html`<mq-chart class="tile size-${tile.size}" report="${tile.id}" params="${v.stateQuery}"
          src="/embed/dashboards/${v.d.id}/data/${i}?t=${t}" ${tile.height ? html`height="${tile.height}"` : ''}
          ${tile.better ? html`better="${tile.better}"` : ''}></mq-chart>`)}
      </mq-dashboard>
      ${footer(v.o.link)}
    </main>`,
  }));
});

// A tile's data: the query is the dashboard's state (locked + freed values), turned into the tile's query here, so a
// viewer can only ever get what the dashboard page itself would show under that state.
embedRoutes.get('/embed/dashboards/:id/data/:tile', async (c) => {
  const v = await dashboardView(c, c.req.param('id'));
  const n = Number(c.req.param('tile'));
  const tile = Number.isInteger(n) ? v.tiles[n] : undefined;
  if (!tile) throw new HttpError(403, `The ${v.d.title} dashboard has no tile ${c.req.param('tile')} for this link`);
  const q = new URLSearchParams(tileQuery(tile.accepts, tile.fixedParams, v.state, v.filters, v.now));
  const deps = c.get('deps');
  const r = await runReport(deps.readDb, deps.catalog, tile.id, q, { role: v.o.link.role, now: v.now, cache: deps.caches.reports });
  c.header('Cache-Control', 'private, no-store');
  return c.json(apiAnswer(r));
});

// ── managing links: /embeds ──────────────────────────────────────────────────────────────────────────────────────

export interface NewEmbed { resource: string; locked?: string; free?: string; days?: string | number; origin?: string }
export class EmbedInputError extends HttpError {}

/** Checks a link request against the resource and the creator's role; errors name the field. */
async function checkEmbed(deps: AppDeps, c: Context<Env> | null, role: Role, input: NewEmbed, now: Date) {
  const errors: FieldErrors = {};
  const m = /^(report|dashboard):([a-z0-9_]+)$/.exec(input.resource ?? '');
  const kind = m?.[1] as Kind | undefined, id = m?.[2] ?? '';
  let names: string[] = [];
  let report, dashboard;
  if (!m) errors.resource = 'Choose a report or a dashboard';
  else if (kind === 'report') {
    report = deps.catalog.reports.get(id);
    if (!report || !(report.roles as string[]).includes(role)) errors.resource = `No report ${id} your role (${role}) may see`;
    else names = acceptedNames('report', report.params, undefined);
  } else {
    dashboard = deps.dashboards.get(id);
    if (!dashboard || !dashboard.roles.includes(role)) errors.resource = `No dashboard ${id} your role (${role}) may see`;
  }
  const lockedQuery = new URLSearchParams((input.locked ?? '').trim().replace(/^\?/, ''));
  const free = [...new Set((input.free ?? '').split(/[\s,]+/).filter(Boolean))];
  const days = input.days === undefined || input.days === '' ? MAX_EMBED_DAYS : Number(input.days);
  if (!Number.isInteger(days) || days < 1 || days > MAX_EMBED_DAYS) errors.days = `Days must be a whole number from 1 to ${MAX_EMBED_DAYS}`;
  let origin: string | null = null;
  if ((input.origin ?? '').trim()) {
    try { origin = parseOrigin(input.origin!.trim(), 'Allowed origin'); } catch (e: any) { errors.origin = e.message; }
  }
  if (!errors.resource) {
    if (dashboard) {
      if (!c) throw new Error('a dashboard link needs the request context');
      const { filters } = await resolveDashboard(c.get('deps'), role, dashboard);
      names = acceptedNames('dashboard', undefined, filters);
      try { parseState(lockedQuery, filters, now); } catch (e) { if (e instanceof FilterError) errors.locked = `${e.field}: ${e.message}`; else throw e; }
    }
    const unknownLocked = [...new Set(lockedQuery.keys())].filter((k) => !names.includes(k));
    if (unknownLocked.length) errors.locked = `Unknown parameter ${unknownLocked.join(', ')} (this one takes ${names.join(', ') || 'none'})`;
    else if (report) {
      try { await parseReportParams(deps.readDb, deps.catalog, id, lockedQuery, { role, now }); } catch (e) {
        if (e instanceof HttpError && e.status === 400) errors.locked = e.fields ? Object.entries(e.fields).map(([k, v]) => `${k}: ${v}`).join('; ') : e.message;
        else throw e;
      }
    }
    const badFree = free.filter((k) => !names.includes(k));
    if (badFree.length) errors.free = `Unknown parameter ${badFree.join(', ')} (this one takes ${names.join(', ') || 'none'})`;
    else if (free.some((k) => lockedQuery.has(k))) errors.free = `A parameter cannot be both locked and changeable: ${free.filter((k) => lockedQuery.has(k)).join(', ')}`;
  }
  if (Object.keys(errors).length) throw new EmbedInputError(400, `The embed link was not created: ${Object.values(errors).join('; ')}`, errors);
  const lock: Record<string, string[]> = {};
  for (const k of new Set(lockedQuery.keys())) lock[k] = lockedQuery.getAll(k);
  return { kind: kind!, id, claims: { res: `${kind}:${id}`, lock, free, origin } satisfies EmbedClaims, days };
}

/** Creates a link (checked, signed, stored and audited in one transaction); returns its id and the path to share. */
export async function createEmbedLink(c: Context<Env>, creator: { id: number; role: Role }, input: NewEmbed): Promise<{ id: string; path: string }> {
  const deps = c.get('deps');
  const now = deps.now();
  const { kind, id, claims, days } = await checkEmbed(deps, c, creator.role, input, now);
  const linkId = randomUUID();
  const expires = new Date(now.getTime() + days * 86_400_000);
  const token = await signEmbed(deps, linkId, claims, now, expires);
  await deps.db.tx(async (q) => {
    await q.query(sql`INSERT INTO embed_links (id, resource_kind, resource_id, locked, free, allowed_origin, token, created_by, created_at, expires_at)
      VALUES (${linkId}::uuid, ${kind}, ${id}, ${JSON.stringify(claims.lock)}::jsonb, ${claims.free}::text[], ${claims.origin},
              ${token}, ${creator.id}, ${now}, ${expires})`);
    await writeAudit(q, c, { action: 'embed.create', targetType: kind, targetId: id,
      after: { link: linkId, locked: claims.lock, free: claims.free, origin: claims.origin, expires_at: expires.toISOString() } });
  });
  return { id: linkId, path: embedPath(kind, id, token) };
}

export const embedPath = (kind: string, id: string, token: string) => `/embed/${kind}s/${id}?t=${encodeURIComponent(token)}`;

interface ListedLink { id: string; resource_kind: string; resource_id: string; locked: Record<string, string[]>; free: string[];
  allowed_origin: string | null; token: string; created_by: number; creator: string; created_at: Date; expires_at: Date;
  revoked_at: Date | null; views: number; last_view: Date | null }

async function linksPage(c: Context<Env>, o: { errors?: FieldErrors; form?: NewEmbed; created?: string; status?: number } = {}) {
  const deps = c.get('deps');
  const user = c.get('user')!;
  const now = deps.now();
  const links = await deps.db.query<ListedLink>(sql`SELECT l.id, l.resource_kind, l.resource_id, l.locked, l.free, l.allowed_origin, l.token,
      l.created_by, u.email AS creator, l.created_at, l.expires_at, l.revoked_at,
      (SELECT count(*)::int FROM embed_views v WHERE v.link_id = l.id) AS views,
      (SELECT max(viewed_at) FROM embed_views v WHERE v.link_id = l.id) AS last_view
    FROM embed_links l JOIN users u ON u.id = l.created_by ORDER BY l.created_at DESC LIMIT 100`);
  const views = await deps.db.query<{ viewed_at: Date; resource_kind: string; resource_id: string; creator: string; referrer: string | null; ip: string | null }>(
    sql`SELECT v.viewed_at, l.resource_kind, l.resource_id, u.email AS creator, v.referrer, host(v.ip) AS ip
      FROM embed_views v JOIN embed_links l ON l.id = v.link_id JOIN users u ON u.id = l.created_by ORDER BY v.viewed_at DESC, v.id DESC LIMIT 50`);
  const role = user.role;
  const options: [string, string][] = [
    ...[...deps.dashboards.values()].filter((d) => d.roles.includes(role)).map((d): [string, string] => [`dashboard:${d.id}`, `Dashboard: ${d.title}`]),
    ...[...deps.catalog.reports.values()].filter((r) => (r.roles as string[]).includes(role)).sort((a, b) => a.title.localeCompare(b.title))
      .map((r): [string, string] => [`report:${r.id}`, `Report: ${r.title}`]),
  ];
  const origin = new URL(c.req.url).origin;
  const state = (l: ListedLink) => l.revoked_at ? `revoked ${when(l.revoked_at)}` : l.expires_at.getTime() <= now.getTime() ? 'expired' : 'active';
  const created = o.created ? links.find((l) => l.id === o.created) : undefined;
  const canRevoke = (l: ListedLink) => !l.revoked_at && (role === 'admin' || l.created_by === user.id);
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Embed links',
    body: html`<main class="embeds">
      <h1>Embed links</h1>
      <p class="muted">A signed link shows one dashboard or report, as you see it, to anyone who has the link, without
        signing in — in an <code>&lt;iframe&gt;</code> on the allowed origin, or opened directly. It expires after at most
        ${MAX_EMBED_DAYS} days; revoke it any time. Every view is logged below.</p>
      ${notice(c.req.query('done') === 'revoked' ? 'The link is revoked: it no longer opens.' : undefined)}
      ${created ? html`<section class="card" role="status"><h2>Link created</h2>
        <p><a href="${embedPath(created.resource_kind, created.resource_id, created.token)}">${origin}${embedPath(created.resource_kind, created.resource_id, created.token)}</a></p>
        <pre><code>&lt;iframe src="${origin}${embedPath(created.resource_kind, created.resource_id, created.token)}" width="100%" height="640" style="border:0"&gt;&lt;/iframe&gt;</code></pre></section>` : ''}
      <section class="card"><h2>New link</h2>
        ${formError(o.errors ? 'The link was not created.' : undefined)}
        <form method="post" action="/embeds" novalidate>
          ${selectField({ name: 'resource', label: 'Dashboard or report', options, value: o.form?.resource ?? null, error: o.errors?.resource })}
          ${field({ name: 'locked', label: 'Locked parameters', value: o.form?.locked, error: o.errors?.locked, maxlength: 2000,
            hint: 'As in the page URL, e.g. from=2026-01&to=2026-06&plan=premium (a dashboard: period, from, to and its filters)' })}
          ${field({ name: 'free', label: 'Parameters the viewer may change', value: o.form?.free, error: o.errors?.free, maxlength: 500, hint: 'Names, comma-separated, e.g. plan, country' })}
          ${field({ name: 'days', label: 'Expires after (days)', type: 'number', value: o.form?.days === undefined ? String(MAX_EMBED_DAYS) : String(o.form.days), error: o.errors?.days, hint: `1 to ${MAX_EMBED_DAYS}` })}
          ${field({ name: 'origin', label: 'Allowed origin (optional)', value: o.form?.origin, error: o.errors?.origin, maxlength: 300,
            hint: 'The site that may frame it, e.g. https://intranet.example.com; empty: only Marquee itself may frame it' })}
          <p><button type="submit">Create link</button></p>
        </form></section>
      <section class="card"><h2>Links</h2>
        ${links.length ? html`<div class="table-wrap"><table><thead><tr><th>Resource</th><th>Locked</th><th>Viewer may change</th><th>Origin</th>
          <th>Created by</th><th>Created</th><th>Expires</th><th>State</th><th>Views</th><th></th></tr></thead><tbody>
          ${links.map((l) => html`<tr><td>${l.resource_kind} <code>${l.resource_id}</code>${state(l) === 'active' ? html`<br><a href="${embedPath(l.resource_kind, l.resource_id, l.token)}">open</a>` : ''}</td>
            <td><code>${new URLSearchParams(Object.entries(l.locked).flatMap(([k, vs]) => vs.map((v) => [k, v]))).toString() || '—'}</code></td>
            <td>${l.free.join(', ') || '—'}</td><td>${l.allowed_origin ?? '—'}</td><td>${l.creator}</td>
            <td class="nowrap">${when(l.created_at)}</td><td class="nowrap">${when(l.expires_at)}</td><td>${state(l)}</td>
            <td>${l.views}${l.last_view ? html`<br><small class="muted">last ${when(l.last_view)}</small>` : ''}</td>
            <td>${canRevoke(l) ? html`<form method="post" action="/embeds/revoke" class="inline"><input type="hidden" name="id" value="${l.id}">
              <button type="submit" class="secondary">Revoke</button></form>` : ''}</td></tr>`)}
        </tbody></table></div>` : html`<p>No links yet.</p>`}</section>
      <section class="card"><h2>Recent views</h2>
        ${views.length ? html`<div class="table-wrap"><table><thead><tr><th>When</th><th>Resource</th><th>Embedded by</th><th>Where (referrer)</th><th>Address</th></tr></thead><tbody>
          ${views.map((v) => html`<tr><td class="nowrap">${when(v.viewed_at)}</td><td>${v.resource_kind} <code>${v.resource_id}</code></td>
            <td>${v.creator}</td><td>${v.referrer ?? '—'}</td><td>${v.ip ?? '—'}</td></tr>`)}</tbody></table></div>` : html`<p>No views yet.</p>`}</section>
    </main>`,
  }), (o.status ?? 200) as 200);
}

// ?resource=dashboard:executive_overview&locked=period%3D6m pre-fills the form (a link from a page being viewed).
embedRoutes.get('/embeds', (c) => linksPage(c, { created: c.req.query('created'),
  form: { resource: c.req.query('resource') ?? '', locked: c.req.query('locked') ?? '', free: c.req.query('free') ?? '' } }));

embedRoutes.post('/embeds', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  const input: NewEmbed = { resource: form.resource ?? '', locked: form.locked, free: form.free, days: form.days, origin: form.origin };
  try {
    const made = await createEmbedLink(c, user, input);
    return c.redirect(`/embeds?created=${made.id}`, 303);
  } catch (e) {
    if (e instanceof EmbedInputError) return linksPage(c, { errors: e.fields, form: input, status: 400 });
    throw e;
  }
});

embedRoutes.post('/embeds/revoke', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  const id = form.id ?? '';
  if (!UUID.test(id)) throw new HttpError(400, 'Say which link to revoke', { id: 'must be a link id from the list' });
  const deps = c.get('deps');
  const done = await deps.db.tx(async (q) => {
    const row = await q.one<{ created_by: number; revoked_at: Date | null }>(sql`SELECT created_by, revoked_at FROM embed_links WHERE id = ${id}::uuid FOR UPDATE`);
    if (!row) throw new HttpError(404, `No embed link ${id}`);
    if (user.role !== 'admin' && row.created_by !== user.id) throw new HttpError(403, 'Managers may revoke only the links they created; ask an admin');
    if (row.revoked_at) return false;
    await q.query(sql`UPDATE embed_links SET revoked_at = ${deps.now()}, revoked_by = ${user.id} WHERE id = ${id}::uuid`);
    await writeAudit(q, auditContext(c), { action: 'embed.revoke', targetType: 'embed_link', targetId: id });
    return true;
  });
  return c.redirect(`/embeds${done ? '?done=revoked' : ''}`, 303);
});
