// The report engine's API: loadCatalog, ensureMarts, refreshMarts, runReport (the contract in sql/reports files),
// plus CSV streaming through a cursor and the in-process result cache keyed by mart generations.
import { createHash } from 'node:crypto';
import sql from 'sql-template-tag';
import { readThrough, isDbUnavailable, ReplicaBehind, type ChangeCache, type Db, type Queryable, type ReadPlace } from '../db/index.ts';
import { HttpError } from '../errors.ts';
import type { Catalog, ReportDef } from './catalog.ts';
import { parseParams, ParamError, type ParamDecl, type ParsedParams } from './params.ts';
import { withData } from './chart.ts';
import { martGenerations, catalogGeneration, type MartGeneration, type CatalogGeneration } from './marts.ts';
import { nextFire } from './cron-time.ts';
import type { CacheEntry, ReportResult, ResultCache } from './result.ts';
import type { Role } from '../auth/roles.ts';

export { loadCatalog, CatalogError, withDependents, DEFAULT_REPORTS_DIR } from './catalog.ts';
export type { Catalog, ReportDef, MartDef } from './catalog.ts';
export { ensureMarts, refreshMarts, refreshDue, dueMarts, checkReportSql, martStates, refreshHistory } from './marts.ts';

export type { Role } from '../auth/roles.ts';
export type { ReportResult, ResultCache } from './result.ts';

// ── running a report ────────────────────────────────────────────────────────────────────────────────────────────
export interface RunOptions {
  role: Role;
  now: Date;
  /** Where results are kept between requests (deps.caches.reports); none (or false): every call runs the SQL. */
  cache?: ResultCache | null | false;
}

function checkRole(report: ReportDef | undefined, id: string, role: Role): ReportDef {
  // unknown: 404; known but not for this role: 403 naming the roles it is for (the report list shows neither)
  if (!report) throw new HttpError(404, `No report named ${id}`);
  if (!(report.roles as string[]).includes(role)) {
    throw new HttpError(403, `Your role (${role}) may not run the report ${id}; it is for ${report.roles.join(', ')}`);
  }
  return report;
}

const LOOKUP_SQL: Record<string, (vals: string[]) => ReturnType<typeof sql>> = {
  plans: (v) => sql`SELECT code AS v FROM plans WHERE code = ANY(${v})`,
  genres: (v) => sql`SELECT name AS v FROM genres WHERE name = ANY(${v})`,
  countries: (v) => sql`SELECT name AS v FROM countries WHERE name = ANY(${v})`,
  // one probe of users_country_idx per value asked for (not every customer of those countries)
  customer_countries: (v) => sql`SELECT c.v FROM unnest(${v}::text[]) AS c(v) WHERE EXISTS (SELECT 1 FROM users u WHERE u.country = c.v)`,
};
const TITLE_TYPES = ['Movie', 'TV Show'];

// The table whose change notice (db.changes) can take a value out of each lookup: values found are remembered until
// then, so a filter a request repeats needs no query. Values not found are never remembered (a new plan or a first
// customer in a country is accepted at once); customer countries are dropped by a delete of users (a customer's
// country never changes), genres and countries by a titles load (catalog_state).
const LOOKUP_TABLE: Record<string, string> = { plans: 'plans', genres: 'catalog_state', countries: 'catalog_state', customer_countries: 'users' };
const foundValues = new WeakMap<Db, ChangeCache<Set<string>>>();

/** Which of the candidates exist in the lookup (one small query for those not already found, only when a multi value is given). */
function lookupIn(db: Db) {
  return async (decl: ParamDecl, candidates: string[]) => {
    if (decl.lookup === 'title_types') return new Set(TITLE_TYPES);
    let k = foundValues.get(db);
    if (!k) foundValues.set(db, (k = new Map()));
    const found = await readThrough(db, k, decl.lookup!, [LOOKUP_TABLE[decl.lookup!]], async () => new Set<string>());
    const missing = candidates.filter((c) => !found.has(c));
    if (missing.length) for (const r of await db.query<{ v: string }>(LOOKUP_SQL[decl.lookup!](missing))) found.add(r.v);
    return found;
  };
}

/** Every option of a multi-select (for forms and the catalog API). */
export async function lookupOptions(db: Db, decl: ParamDecl): Promise<[string, string][]> {
  if (decl.values) return decl.values.map((v) => [v, v]);
  switch (decl.lookup) {
    case 'title_types': return TITLE_TYPES.map((v) => [v, v]);
    case 'plans': return (await db.query<{ code: string; name: string }>('SELECT code, name FROM plans ORDER BY sort_order, code')).map((r) => [r.code, r.name]);
    case 'genres': return (await db.query<{ name: string }>('SELECT name FROM genres ORDER BY name')).map((r) => [r.name, r.name]);
    case 'countries': return (await db.query<{ name: string }>('SELECT name FROM countries ORDER BY name')).map((r) => [r.name, r.name]);
    // the distinct countries by skipping through users_country_idx (one probe per country, not a scan of every customer)
    case 'customer_countries': return (await db.query<{ v: string }>(`WITH RECURSIVE c(v) AS (
        SELECT min(country) FROM users
        UNION ALL SELECT (SELECT min(u.country) FROM users u WHERE u.country > c.v) FROM c WHERE c.v IS NOT NULL)
      SELECT v FROM c WHERE v IS NOT NULL`)).map((r) => [r.v, r.v]);
    default: return [];
  }
}

// Generations of what a report reads: its marts' (report_marts) or the catalog's (catalog_state). Kept in memory
// while db.changes says that table has not changed since they were read (a refresh, a re-creation, a stale mark, a
// titles load, in any process), so the hot path needs no query; while the feed is down, read per request with single
// flight: concurrent requests for the same key share one in-flight lookup, so a request sees the generations as of at
// most one round trip before it arrived — never older.
const inflight = new WeakMap<Db, Map<string, Promise<unknown>>>();
const known = new WeakMap<Db, ChangeCache<unknown>>();
function generationsThrough<T>(db: Db, table: string, key: string, read: () => Promise<T>): Promise<T> {
  let m = inflight.get(db), k = known.get(db);
  if (!m) inflight.set(db, (m = new Map()));
  if (!k) known.set(db, (k = new Map()));
  key = `${table}\0${key}`;
  return readThrough(db, k, key, [table], () => {
    let p = m!.get(key);
    if (!p) {
      p = read().finally(() => m!.delete(key));
      m!.set(key, p);
    }
    return p;
  }) as Promise<T>;
}
const generationsOf = (db: Db, names: string[]) => generationsThrough(db, 'report_marts', names.join(','), () => martGenerations(db, names));
const catalogGenerationOf = (db: Db) => generationsThrough(db, 'catalog_state', '', () => catalogGeneration(db));

/** A report and its parameters, checked: what parseReportParams answers and runParsedReport runs. */
export interface ParsedReport { report: ReportDef; params: ParsedParams }

/** Role check first (before any SQL: 404 unknown, 403 not for this role), then the parameters (400 naming each field). */
export async function parseReportParams(db: Db, catalog: Catalog, id: string, query: URLSearchParams, opts: Pick<RunOptions, 'role' | 'now'>): Promise<ParsedReport> {
  const report = checkRole(catalog.reports.get(id), id, opts.role);
  try {
    return { report, params: await parseParams(report.params, query, opts.now, lookupIn(db)) };
  } catch (e) {
    if (e instanceof ParamError) throw new HttpError(400, e.message, e.fields);
    throw e;
  }
}

/** The generations of the marts the report reads; 503 while one has never been refreshed. */
async function martStatesOf(db: Db, report: ReportDef): Promise<Map<string, MartGeneration>> {
  const states = report.allMarts.length ? await generationsOf(db, report.allMarts) : new Map<string, MartGeneration>();
  for (const m of report.allMarts) {
    if (!states.get(m)?.as_of) {
      throw new HttpError(503, `The report ${report.id} is not ready: mart ${m} has not been refreshed yet. Try again shortly.`, undefined, { 'Retry-After': '30' });
    }
  }
  return states;
}

/** As of when, next refresh, stale, and the generation key a result is cached and ETagged under ('' for live SQL). */
async function freshnessOf(db: Db, catalog: Catalog, report: ReportDef, now: Date) {
  // the catalog changes only when written (a titles load): as of that write, no schedule
  if (report.catalog) {
    const g: CatalogGeneration = await catalogGenerationOf(db);
    return { asOf: g.loaded_at.toISOString(), nextRefresh: null, stale: false, gen: `catalog:${g.generation}` };
  }
  const states = await martStatesOf(db, report);
  if (!report.allMarts.length) return { asOf: now.toISOString(), nextRefresh: null, stale: false, gen: '' };
  let asOf = Infinity, next = Infinity, stale = false;
  for (const m of report.allMarts) {
    const s = states.get(m)!;
    asOf = Math.min(asOf, s.as_of!.getTime());
    const n = nextFire(catalog.marts.get(m)!.schedule, now);
    if (n) next = Math.min(next, n.getTime());
    stale ||= s.stale;
  }
  return { asOf: new Date(asOf).toISOString(), nextRefresh: Number.isFinite(next) ? new Date(next).toISOString() : null, stale, gen: martGenKey(report, states) };
}

const martGenKey = (report: ReportDef, states: Map<string, MartGeneration>) => report.allMarts.map((m) => {
  const s = states.get(m);
  return s ? `${m}:${s.generation}:${s.definition_hash.slice(0, 12)}:${s.stale ? 1 : 0}` : `${m}:none`;
}).join(',');

// ── on the read replica ─────────────────────────────────────────────────────────────────────────────────────────
// The generations come from the primary (its change feed says when they move), and a generation notice arrives before
// the replica has replayed that commit. So a read on the replica first checks, in its own transaction, that the
// replica holds the same generations: if not, it is run on the primary instead, and a result is never cached (or
// ETagged) under a generation whose data it does not hold.
async function sameGeneration(q: Queryable, place: ReadPlace, report: ReportDef, gen: string) {
  if (!place.replica || !gen) return;
  const here = report.catalog ? `catalog:${(await catalogGeneration(q)).generation}` : martGenKey(report, await martGenerations(q, report.allMarts));
  if (here !== gen) throw new ReplicaBehind(`the replica holds ${here}, the primary ${gen}`);
}

/** The as-of of data read at `place`: no newer than the replica's last replayed commit when it is behind. */
function asOfAt(asOf: string, place: ReadPlace): string {
  return place.replayedAt && place.replayedAt.getTime() < Date.parse(asOf) ? place.replayedAt.toISOString() : asOf;
}

// ── result cache ────────────────────────────────────────────────────────────────────────────────────────────────
// Mart-backed and @catalog results are keyed by generation: invalidated by a refresh or a titles load, never by time.
// Live SQL has no generation: only a report that declares `@maxage` is cached, by time, each entry served until it is
// that old (its asOf says when it was read) and read again ahead of that, once, by the first request past half of it,
// while the others keep getting the entry they have; a miss is one read however many requests wait for it.
const CACHE_ENTRIES = 500;

/** Runs a report: role, parameters, then its SQL in a READ ONLY transaction with its timeout and row cap. */
export async function runReport(db: Db, catalog: Catalog, id: string, query: URLSearchParams, opts: RunOptions): Promise<ReportResult> {
  return runParsedReport(db, catalog, await parseReportParams(db, catalog, id, query, opts), opts);
}

type Fresh = Awaited<ReturnType<typeof freshnessOf>>;
type Stored = CacheEntry['result'];

/** Runs a report whose role and parameters parseReportParams has checked (a page parses once, then runs). */
export async function runParsedReport(db: Db, catalog: Catalog, { report, params }: ParsedReport, opts: RunOptions): Promise<ReportResult> {
  const f = await freshnessOf(db, catalog, report, opts.now);
  const key = `${report.id}\0${report.hash}\0${params.key}`;
  const cache = opts.cache || null;
  const read = () => readResult(db, report, params, f);
  if (cache && f.gen) {
    const hit = cache.get(key);
    if (hit && hit.gen === f.gen) return { ...used(cache, key, hit).result, nextRefresh: f.nextRefresh, cached: true };
    const result = await read();
    remember(cache, key, { gen: f.gen, result });
    return { ...result, nextRefresh: f.nextRefresh, cached: false };
  }
  if (cache && report.maxAgeMs) {
    const hit = cache.get(key);
    const age = hit ? opts.now.getTime() - Date.parse(hit.result.asOf) : Infinity;
    if (hit && age < report.maxAgeMs) {
      if (age >= report.maxAgeMs / 2) rereadOnce(cache, key, read).catch(() => {}); // a failure shows on the next miss
      return { ...used(cache, key, hit).result, nextRefresh: null, cached: true };
    }
    return { ...(await rereadOnce(cache, key, read)), nextRefresh: null, cached: false };
  }
  return { ...(await read()), nextRefresh: f.nextRefresh, cached: false };
}

function used(cache: ResultCache, key: string, hit: CacheEntry): CacheEntry {
  cache.delete(key); cache.set(key, hit); // most recently used last
  return hit;
}

function remember(cache: ResultCache, key: string, entry: CacheEntry) {
  cache.set(key, entry);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
}

const rereads = new WeakMap<ResultCache, Map<string, Promise<Stored>>>();
/** One read of a live report per key at a time: whoever asks while it runs shares it; the result is cached. */
function rereadOnce(cache: ResultCache, key: string, read: () => Promise<Stored>): Promise<Stored> {
  let m = rereads.get(cache);
  if (!m) rereads.set(cache, (m = new Map()));
  let p = m.get(key);
  if (!p) {
    p = read().then((result) => { remember(cache, key, { gen: '', result }); return result; }).finally(() => m!.delete(key));
    m.set(key, p);
  }
  return p;
}

/** The rows one answer may hold and where they start: the whole capped result, or one page of it. */
function pageWindow(report: ReportDef, params: ParsedParams): { page: number | null; offset: number; limit: number } {
  if (!report.pageSize) return { page: null, offset: 0, limit: report.rowCap };
  const page = Number(params.bound.page);
  const offset = (page - 1) * report.pageSize;
  return { page, offset, limit: Math.min(report.pageSize, report.rowCap - offset) };
}

async function readResult(db: Db, report: ReportDef, params: ParsedParams, f: Fresh): Promise<Stored> {
  const { rows, place } = await fetchRows(db, report, params, f.gen);
  const { page, limit } = pageWindow(report, params);
  // more rows exist past this answer: the next page's, or past the cap
  const truncated = rows.length > limit;
  if (truncated) rows.length = limit;
  // live SQL has no generation: its validator is the content itself
  const etag = createHash('sha256').update(JSON.stringify([report.id, report.hash, params.key, f.gen || rows])).digest('base64url').slice(0, 27);
  return {
    id: report.id, title: report.title, params: params.values, query: params.query, asOf: asOfAt(f.asOf, place), stale: f.stale,
    rowCount: rows.length, truncated, rowCap: report.pageSize || report.rowCap, page, rows, spec: withData(report.spec, rows), etag,
  };
}

function bindValues(report: ReportDef, params: ParsedParams) {
  return report.bindOrder.map((n) => params.bound[n]);
}

/** The values of statementOf's text: the report's parameters, then (paged) the page's row limit and offset. */
export function statementValues(report: ReportDef, params: ParsedParams): unknown[] {
  const values = bindValues(report, params);
  if (!report.pageSize) return values;
  const { offset, limit } = pageWindow(report, params);
  return [...values, limit + 1, offset];
}

/**
 * A report's statement, named after a hash of its text: each pooled connection prepares it once. A mart-backed report
 * runs it with one generic plan (fetchRows: plan_cache_mode = force_generic_plan) — planning was most of its database
 * time when the result cache misses (a few ms against ~1 ms of execution), and PostgreSQL's own choice kept planning
 * per run where the values prune a branch. @catalog and live SQL keep PostgreSQL's choice.
 */
const statements = new WeakMap<ReportDef, { text: string; name: string }>();
export function statementOf(report: ReportDef): { text: string; name: string } {
  let s = statements.get(report);
  if (!s) {
    const n = report.bindOrder.length;
    const text = `SELECT * FROM (\n${report.sql}\n) AS report ${report.pageSize ? `LIMIT ($${n + 1}::bigint) OFFSET ($${n + 2}::bigint)` : `LIMIT ${report.rowCap + 1}`}`;
    s = { text, name: `report_${createHash('sha256').update(text).digest('hex').slice(0, 20)}` };
    statements.set(report, s);
  }
  return s;
}

async function fetchRows(db: Db, report: ReportDef, params: ParsedParams, gen: string): Promise<{ rows: Record<string, any>[]; place: ReadPlace }> {
  try {
    // the cap is enforced by the database: one row more than the cap tells that rows were cut (ORDER BY of the
    // report's own query survives the outer LIMIT in PostgreSQL)
    return await db.readTx(async (q, place) => {
      await sameGeneration(q, place, report, gen);
      return { rows: await q.query({ ...statementOf(report), values: statementValues(report, params) }), place };
    // a report over marts reads small tables: planning its statement for each request's values cost more than running
    // it (kpi_mrr at 1M customers: 3.4 ms a run with a plan per run, 1.0 ms with one generic plan); @catalog reports
    // keep PostgreSQL's choice: their filters are "value IS NULL OR …", which a plan for the values at hand drops
    }, { statementTimeoutMs: report.timeoutMs, genericPlans: report.allMarts.length > 0 });
  } catch (e: any) {
    throw reportFailure(report, e);
  }
}

function reportFailure(report: ReportDef, e: any): Error {
  if (e?.code === '57014') {
    return new HttpError(503, `The report ${report.id} took longer than its ${report.timeoutMs} ms limit. Narrow the parameters or try again later.`);
  }
  if (e?.code === '55000' && /not been populated/.test(e.message)) {
    return new HttpError(503, `The report ${report.id} is not ready: its data has not been refreshed yet.`, undefined, { 'Retry-After': '30' });
  }
  if (isDbUnavailable(e)) return e; // the database is down or restarting: onError answers 503 + Retry-After
  // anything else is a bug in the report file or the database: logged with the request id by onError
  return new Error(`report ${report.id} (${report.file}) failed: ${e?.message ?? e}`);
}

// ── CSV through a cursor ────────────────────────────────────────────────────────────────────────────────────────
export interface CsvStream {
  report: ReportDef;
  params: ParsedParams;
  asOf: string;
  stale: boolean;
  etag: string | null;
  rowCap: number;
  /** more rows than rowCap exist: the body holds the first rowCap (announced before the body starts) */
  truncated: boolean;
  /** null when the caller's If-None-Match already holds this answer (no SQL ran) */
  body: ReadableStream<Uint8Array> | null;
}

const BATCH = 1000;

export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = v instanceof Date ? v.toISOString() : typeof v === 'object' ? JSON.stringify(v) : String(v);
  // a spreadsheet would run a cell starting with = + - @ as a formula; numbers stay as they are
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s) && !/^[+-]?\d+(\.\d+)?$/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Streams a report as CSV. The cursor is a SCROLL cursor: the engine first checks whether a row exists past the
 * cap (so the X-Row-Cap/X-Truncated headers tell the truth before the body starts), then rewinds and streams in
 * batches, holding one connection and one READ ONLY snapshot until the client has read the last byte.
 */
export async function streamCsv(db: Db, catalog: Catalog, id: string, query: URLSearchParams, opts: RunOptions & { log?: (l: string) => void; ifNoneMatch?: (etag: string) => boolean }): Promise<CsvStream> {
  const { report, params } = await parseReportParams(db, catalog, id, query, opts);
  const f = await freshnessOf(db, catalog, report, opts.now);
  const etag = f.gen ? createHash('sha256').update(JSON.stringify([report.id, report.hash, params.key, f.gen])).digest('base64url').slice(0, 27) : null;
  if (etag && opts.ifNoneMatch?.(etag)) {
    return { report, params, asOf: f.asOf, stale: f.stale, etag, rowCap: report.rowCap, truncated: false, body: null };
  }
  const enc = new TextEncoder();
  return new Promise<CsvStream>((resolve, reject) => {
    let headed = false;
    db.readTx(async (client, place) => {
      await sameGeneration(client, place, report, f.gen);
      let finish!: (err?: unknown) => void;
      const finished = new Promise<void>((res, rej) => { finish = (err) => (err ? rej(err) : res()); });
      await client.query({ text: `DECLARE report_csv SCROLL CURSOR FOR ${report.sql}`, values: bindValues(report, params) });
      const beyond = await client.query(`FETCH ABSOLUTE ${report.rowCap + 1} FROM report_csv`);
      await client.query('MOVE ABSOLUTE 0 IN report_csv');
      const first = await client.withColumns(`FETCH FORWARD ${Math.min(BATCH, report.rowCap)} FROM report_csv`);
      const columns = first.columns.map((col) => col.name);
      let sent = 0;
      const lines = (rows: any[]) => rows.map((r) => columns.map((k) => csvField(r[k])).join(',') + '\r\n').join('');
      const body = new ReadableStream<Uint8Array>({
        start(ctrl) {
          ctrl.enqueue(enc.encode(columns.map(csvField).join(',') + '\r\n'));
          const rows = first.rows;
          sent = rows.length;
          if (rows.length) ctrl.enqueue(enc.encode(lines(rows)));
          if (rows.length < Math.min(BATCH, report.rowCap) || sent >= report.rowCap) { ctrl.close(); finish(); }
        },
        async pull(ctrl) {
          try {
            const want = Math.min(BATCH, report.rowCap - sent);
            const next = await client.query(`FETCH FORWARD ${want} FROM report_csv`);
            sent += next.length;
            if (next.length) ctrl.enqueue(enc.encode(lines(next)));
            if (next.length < want || sent >= report.rowCap) { ctrl.close(); finish(); }
          } catch (e) {
            ctrl.error(e);
            finish(e);
          }
        },
        cancel() { finish(); },
      }, { highWaterMark: 1 });
      headed = true;
      resolve({ report, params, asOf: asOfAt(f.asOf, place), stale: f.stale, etag, rowCap: report.rowCap, truncated: beyond.length > 0, body });
      await finished; // the transaction (one snapshot, one connection) stays open until the client has read the body
    // once the body has started, the stream cannot move to the primary: a replica failing then ends it early
    }, { isolation: 'repeatable read', statementTimeoutMs: report.timeoutMs, restartable: () => !headed }).catch((e) => {
      if (!headed) reject(reportFailure(report, e));
      else (opts.log ?? console.error)(`[reports] CSV of ${report.id} ended early: ${e?.message ?? e}`);
    });
  });
}
