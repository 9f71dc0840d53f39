// The report engine's JSON API: the catalog of reports a role may run, one report's answer (spec and rows, or rows
// alone), the marts' status and the admin's refresh trigger. CSV downloads are csv.ts; pages are pages.ts.
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import type { Catalog } from './catalog.ts';
import type { ParamDecl } from './params.ts';
import { runReport, refreshMarts, ensureMarts, martStates, refreshHistory, type Role } from './engine.ts';
import { nextFire } from './cron-time.ts';
import { EncodedText, sendEncoded, chooseEncoding } from '../compress.ts';
import { catalogOf, roleOf, rawQuery, matches, freshnessHeaders, pagesAround } from './http.ts';

function paramInfo(p: ParamDecl) {
  return {
    name: p.name, type: p.type, label: p.label, default: p.default ?? null,
    ...(p.min !== undefined ? { min: p.min } : {}), ...(p.max !== undefined ? { max: p.max } : {}),
    ...(p.values ? { values: p.values } : {}), ...(p.lookup ? { lookup: p.lookup } : {}),
  };
}

// the catalog answer depends only on the catalog and the role: built once per pair
const listings = new WeakMap<Catalog, Map<Role, string>>();

/** GET /api/reports: the reports this role may run. */
export function listReports(c: Context<Env>) {
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
}

/** GET /api/marts: every mart's schedule, generation, as-of, stale mark and last error; the last 50 refreshes. */
export async function martStatus(c: Context<Env>) {
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
}

/** POST /api/marts/refresh: those marts (and the marts reading them), or all; 409 while a refresh runs. */
export async function refreshMartsNow(c: Context<Env>) {
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
  const out = await refreshMarts(db, catalog, { only, cascade: true, trigger: 'admin', log, workMem: c.get('deps').config.martWorkMem, parallel: c.get('deps').config.martParallel });
  if (!out.ran) throw new HttpError(409, 'A refresh is already running (here or on another instance); try again when it has finished');
  return c.json({ ran: true, results: out.results }, out.results.every((r) => r.ok) ? 200 : 500);
}

/** GET /api/reports/:id (the answer with its Vega-Lite spec) and /api/reports/:id.json (the rows alone). */
export async function reportData(c: Context<Env>, id: string, format: 'json' | undefined) {
  const catalog = catalogOf(c);
  const { readDb, now, caches } = c.get('deps');
  const role = roleOf(c);
  const inm = c.req.header('if-none-match');
  const r = await runReport(readDb, catalog, id, rawQuery(c), { role, now: now(), cache: caches.reports });
  const etag = `"${r.etag}-${format ?? 'api'}"`;
  freshnessHeaders(c, r);
  // a paged answer links its neighbours (RFC 8288), as the page's Previous / Next do
  const around = pagesAround(catalog.reports.get(id)!, r);
  const link = Object.entries(around).map(([rel, q]) => `</api/reports/${id}${format ? `.${format}` : ''}${q ? `?${q}` : ''}>; rel="${rel}"`);
  if (link.length) c.header('Link', link.join(', '));
  c.header('ETag', etag);
  if (matches(inm, etag)) return c.body(null, 304);
  // a cached result reuses its rows and spec objects: its body is serialized, encoded and compressed once per
  // encoding a client asks for, not on every hit (a live list of 5,000 rows is over a megabyte)
  // (a result read for this request only is sent as a string: compressText compresses it as a stream, off the event loop)
  const head = format === 'json' ? '' : JSON.stringify({
    id: r.id, title: r.title, params: r.params, query: r.query, asOf: r.asOf, nextRefresh: r.nextRefresh, stale: r.stale,
    rowCount: r.rowCount, truncated: r.truncated, rowCap: r.rowCap,
    // only a paged report's answer names its page (the unpaged answer's shape is unchanged)
    ...(r.page !== null ? { page: r.page } : {}),
  });
  const build = (head: string) => (format === 'json' ? JSON.stringify(r.rows) : `${head.slice(0, -1)},"spec":${JSON.stringify(r.spec)}}`);
  if (!r.cached) {
    c.header('Content-Type', 'application/json; charset=UTF-8');
    return c.body(build(head));
  }
  const body = encodedBody(format === 'json' ? r.rows : r.spec, head, build);
  // the bytes differ per encoding: a compressed answer carries the weak form of the ETag (compressText's rule)
  if (chooseEncoding(c.req.header('Accept-Encoding'))) c.header('ETag', `W/${etag}`);
  return sendEncoded(c, body, 'application/json; charset=UTF-8');
}

// per result object (rows or spec), the body last built for it and the head it was built with (the head changes
// with the time of the next refresh)
const bodies = new WeakMap<object, { head: string; text: EncodedText }>();
function encodedBody(of: object, head: string, build: (head: string) => string): EncodedText {
  let b = bodies.get(of);
  if (!b || b.head !== head) bodies.set(of, (b = { head, text: new EncodedText(build(head)) }));
  return b.text;
}
