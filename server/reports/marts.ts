// Marts: tables filled from sql/reports/marts. Created when missing, re-created when their definition hash changed,
// refreshed in dependency order under one advisory lock, with a history row per attempt. An @incremental mart is
// refreshed by replacing only its trailing window (from the month holding its last refresh minus its lookback, 1 day
// unless declared): data in closed months does not change, because billing and activity are written at now(). It is rebuilt in full on its first build, when
// the history was rewritten (history_epoch moved: a simulation run or a bulk import), or when a mart it reads was
// rebuilt. Either way the refresh is one transaction (DELETE + INSERT): readers keep their snapshot and are never
// blocked. A failed refresh leaves the last good data in place and marks the mart stale.
import sql, { raw } from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import { ident, noteLocalChange } from '../db/index.ts';
import { runExclusive } from '../jobs/index.ts';
import type { Catalog, MartDef } from './catalog.ts';
import { withDependents, CATALOG_TABLES } from './catalog.ts';
import { previousFire } from './cron-time.ts';

export const REFRESH_LOCK = 'reports.marts.refresh';
const ENSURE_LOCK = 7_201_100_006; // "marquee report marts DDL"
/** memory per sort or hash of a mart build (the few large builds run one at a time, under the refresh lock):
 *  config.martWorkMem (MARQUEE_MART_WORK_MEM) when the caller passes it */
const DEFAULT_WORK_MEM = '256MB';
/** marts refreshed at once, each on its own connection: config.martParallel (MARQUEE_MART_PARALLEL) when passed */
export const DEFAULT_PARALLEL = 3;

export class MartSqlError extends Error {}

/** `file:line reason` for a database error raised by SQL that starts at `sqlLine` of `file`, after `prefix` text. */
export function locate(file: string, sqlLine: number, statement: string, prefixLen: number, err: any): string {
  const pos = Number(err?.position);
  let line = sqlLine;
  if (pos > prefixLen) line += (statement.slice(prefixLen, pos - 1).match(/\n/g) ?? []).length;
  return `${file}:${line} ${err?.message ?? String(err)}`;
}

export interface EnsureResult { created: string[]; recreated: string[] }

/**
 * Creates missing marts (empty: the first refresh fills them) and re-creates the ones whose file changed, with the
 * marts that read them. Materialized views left by earlier versions are replaced by tables.
 */
export async function ensureMarts(db: Db, catalog: Catalog, opts: { log?: (l: string) => void } = {}): Promise<EnsureResult> {
  const log = opts.log ?? (() => {});
  const result: EnsureResult = { created: [], recreated: [] };
  await db.tx(async (q) => {
    // several instances starting at once: one does the DDL, the others then find nothing to do
    await q.query(sql`SELECT pg_advisory_xact_lock(${ENSURE_LOCK})`);
    const known = new Map((await q.query<{ name: string; definition_hash: string }>(
      sql`SELECT name, definition_hash FROM report_marts`)).map((r) => [r.name, r.definition_hash]));
    const kinds = new Map((await q.query<{ name: string; relkind: string }>(sql`SELECT c.relname AS name, c.relkind FROM pg_class c
      WHERE c.relname = ANY(${catalog.martOrder}) AND c.relnamespace = current_schema()::regnamespace`)).map((r) => [r.name, r.relkind]));
    const remade = new Set<string>();
    for (const name of catalog.martOrder) {
      const m = catalog.marts.get(name)!;
      const kind = kinds.get(name);
      if (kind && kind !== 'r' && kind !== 'm') throw new MartSqlError(`${m.file}:1 ${name} already exists and is not a mart table`);
      if (kind === 'r' && known.get(name) === m.hash && !m.depends.some((d) => remade.has(d))) continue;
      remade.add(name);
      if (kind) {
        // a materialized view of an earlier version: CASCADE takes the views that read it, which come later in the
        // order and are replaced too (kinds was read before: they count as re-created)
        if (kind === 'm') await q.query(`DROP MATERIALIZED VIEW IF EXISTS ${ident(name)} CASCADE`);
        else await q.query(`DROP TABLE ${ident(name)}`).catch((e: any) => { throw new MartSqlError(`${m.file}:1 cannot re-create ${name}: ${e.message}`); });
        result.recreated.push(name);
      } else result.created.push(name);
      const prefix = `CREATE TABLE ${ident(name)} AS\n`;
      const statement = `${prefix}${m.sql}\nWITH NO DATA`;
      try {
        await q.query('SAVEPOINT mart_create');
        await q.query(statement);
        await q.query('RELEASE SAVEPOINT mart_create');
      } catch (e: any) {
        throw new MartSqlError(locate(m.file, m.sqlLine, statement, prefix.length, e));
      }
      if (m.incremental) {
        const col = await q.one<{ type: string }>(sql`SELECT format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
          WHERE a.attrelid = ${name}::regclass AND a.attname = ${m.incremental} AND NOT a.attisdropped`);
        if (col?.type !== 'date') throw new MartSqlError(`${m.file}:1 @incremental ${m.incremental}: the query must return it as a date (the UTC month or day), got ${col?.type ?? 'no such column'}`);
      }
      await q.query(`CREATE UNIQUE INDEX ${ident(indexName(name, 'key'))} ON ${ident(name)} (${m.unique.map(ident).join(', ')})`)
        .catch((e: any) => { throw new MartSqlError(`${m.file}:1 @unique ${m.unique.join(', ')}: ${e.message}`); });
      for (const [i, cols] of m.indexes.entries()) {
        await q.query(`CREATE INDEX ${ident(indexName(name, `idx${i + 1}`))} ON ${ident(name)} (${cols.map(ident).join(', ')})`)
          .catch((e: any) => { throw new MartSqlError(`${m.file}:1 @index ${cols.join(', ')}: ${e.message}`); });
      }
      await q.query(sql`INSERT INTO report_marts (name, definition_hash) VALUES (${name}, ${m.hash})
        ON CONFLICT (name) DO UPDATE SET definition_hash = excluded.definition_hash, created_at = now(),
          generation = report_marts.generation + 1, as_of = NULL, last_success_id = NULL, stale = false,
          last_error = NULL, last_error_at = NULL, built_epoch = NULL, full_as_of = NULL`);
    }
  });
  noteLocalChange('report_marts'); // this process's caches, before the notification comes back
  for (const n of result.created) log(`[reports] created mart ${n}`);
  for (const n of result.recreated) log(`[reports] re-created mart ${n} (its definition, or one it reads, changed)`);
  const orphans = await db.query<{ name: string }>(sql`SELECT name FROM report_marts WHERE name <> ALL(${catalog.martOrder}) ORDER BY name`);
  for (const o of orphans) log(`[reports] mart ${o.name} has no file any more; left in place (DROP TABLE it by hand)`);
  return result;
}

function indexName(mart: string, suffix: string) {
  return `${mart.slice(0, 62 - suffix.length)}_${suffix}`;
}

/** Plans every report's SQL (EXPLAIN, parameters bound as NULL or their defaults' types) so a broken query stops the start. */
export async function checkReportSql(db: Db, catalog: Catalog): Promise<void> {
  const problems: string[] = [];
  for (const r of catalog.reports.values()) {
    const prefix = 'EXPLAIN (FORMAT JSON) ';
    try {
      const plan = await db.tx((q) => q.query<{ 'QUERY PLAN': unknown }>(prefix + r.sql, r.bindOrder.map(() => null)), { readOnly: true, statementTimeoutMs: 10_000 });
      if (r.catalog) {
        // a @catalog result is cached until a catalog table changes: reading any other table would serve stale rows
        const others = [...relationsOf(plan[0]?.['QUERY PLAN'])].filter((t) => !CATALOG_TABLES.includes(t));
        if (others.length) problems.push(`${r.file}:1 @catalog, but the SQL reads ${others.sort().join(', ')} (catalog tables: ${CATALOG_TABLES.join(', ')})`);
      }
    } catch (e: any) {
      problems.push(locate(r.file, r.sqlLine, prefix + r.sql, prefix.length, e));
    }
  }
  if (problems.length) throw new MartSqlError(`report SQL does not plan:\n  ${problems.join('\n  ')}`);
}

/** Every table a JSON plan scans. */
function relationsOf(plan: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(plan)) for (const p of plan) relationsOf(p, out);
  else if (plan && typeof plan === 'object') {
    for (const [k, v] of Object.entries(plan)) {
      if (k === 'Relation Name' && typeof v === 'string') out.add(v);
      else relationsOf(v, out);
    }
  }
  return out;
}

export interface MartState {
  name: string;
  definition_hash: string;
  generation: number;
  as_of: Date | null;
  stale: boolean;
  last_error: string | null;
  last_error_at: Date | null;
  last_attempt_at: Date | null;
  running: boolean;
}

export type MartGeneration = Pick<MartState, 'name' | 'definition_hash' | 'generation' | 'as_of' | 'stale'>;

/** The hot path of every mart-backed report: one primary-key lookup of its marts' generations and freshness. */
export async function martGenerations(db: Queryable, names: string[]): Promise<Map<string, MartGeneration>> {
  const rows = await db.query<MartGeneration>(sql`SELECT name, definition_hash, generation, as_of, stale
    FROM report_marts WHERE name = ANY(${names})`);
  return new Map(rows.map((r) => [r.name, r]));
}

export interface CatalogGeneration { generation: number; loaded_at: Date }

/** The catalog's generation (one row, moved by every write to a catalog table) and when it was last written. */
export async function catalogGeneration(db: Queryable): Promise<CatalogGeneration> {
  const row = await db.one<CatalogGeneration>(sql`SELECT generation, loaded_at FROM catalog_state`);
  if (!row) throw new Error('catalog_state has no row (sql/schema/0020_catalog_generation.sql inserts it)');
  return row;
}

export async function martStates(db: Queryable, names?: string[]): Promise<Map<string, MartState>> {
  const rows = await db.query<MartState>(sql`SELECT m.name, m.definition_hash, m.generation, m.as_of, m.stale, m.last_error,
      m.last_error_at, r.started_at AS last_attempt_at, (r.id IS NOT NULL AND r.finished_at IS NULL) AS running
    FROM report_marts m
    LEFT JOIN LATERAL (SELECT id, started_at, finished_at FROM mart_refreshes WHERE mart = m.name ORDER BY started_at DESC, id DESC LIMIT 1) r ON true
    ${names ? sql`WHERE m.name = ANY(${names})` : raw('')}`);
  return new Map(rows.map((r) => [r.name, r]));
}

export type Trigger = 'schedule' | 'startup' | 'admin' | 'manual';

export interface MartRefreshResult {
  mart: string;
  ok: boolean;
  skipped?: boolean;
  rows?: number;
  ms: number;
  generation?: number;
  /** full: recomputed from the whole history; incremental: rows from `since` on */
  mode?: RefreshMode;
  /** why this mode (first build, history rewritten, …) */
  why?: string;
  since?: Date;
  error?: string;
}

export interface RefreshOutcome { ran: boolean; results: MartRefreshResult[] }

export interface RefreshOptions {
  /** these marts only (default: all) */
  only?: string[];
  /** also the marts that read them, so derived marts never lag behind their sources */
  cascade?: boolean;
  trigger?: Trigger;
  /** rebuild in full even where an incremental refresh would do (benchmarks, repairs) */
  full?: boolean;
  log?: (l: string) => void;
  /** work_mem of each build, a size such as 256MB (config.martWorkMem) */
  workMem?: string;
  /** marts refreshed at once (config.martParallel; default DEFAULT_PARALLEL) */
  parallel?: number;
}

/**
 * Refreshes marts in dependency order under the refresh advisory lock. Another run holding the lock (this
 * instance or another) makes this call return { ran: false } at once: an overlapping run is skipped, not queued.
 */
export async function refreshMarts(db: Db, catalog: Catalog, opts: RefreshOptions = {}): Promise<RefreshOutcome> {
  const unknown = (opts.only ?? []).filter((n) => !catalog.marts.has(n));
  if (unknown.length) throw new Error(`unknown mart ${unknown.join(', ')}`);
  const names = opts.only ? (opts.cascade ? withDependents(catalog, opts.only) : catalog.martOrder.filter((n) => opts.only!.includes(n))) : catalog.martOrder;
  const r = await runExclusive(db, REFRESH_LOCK, () => refreshInOrder(db, catalog, names, opts.trigger ?? 'manual', opts.log ?? (() => {}), opts.full ?? false, opts.workMem, opts.parallel));
  return r.ran ? { ran: true, results: r.result } : { ran: false, results: [] };
}

/** The marts due at `now`: never refreshed, or their last attempt started before their schedule's latest fire time. */
export async function dueMarts(db: Db, catalog: Catalog, now: Date): Promise<string[]> {
  const states = await martStates(db);
  return catalog.martOrder.filter((n) => {
    const s = states.get(n);
    if (!s?.as_of || !s.last_attempt_at) return true;
    const fired = previousFire(catalog.marts.get(n)!.schedule, now);
    return fired !== null && s.last_attempt_at.getTime() < fired.getTime();
  });
}

/** The scheduled job's work: refresh every due mart (a second instance firing at the same minute finds none due). */
export async function refreshDue(db: Db, catalog: Catalog, now: Date, log: (l: string) => void = () => {},
  trigger: Trigger = 'schedule', workMem?: string, parallel?: number): Promise<RefreshOutcome> {
  const r = await runExclusive(db, REFRESH_LOCK, async () => {
    const due = await dueMarts(db, catalog, now);
    return due.length ? refreshInOrder(db, catalog, due, trigger, log, false, workMem, parallel) : [];
  });
  return r.ran ? { ran: true, results: r.result } : { ran: false, results: [] };
}

/**
 * Refreshes `names` (in dependency order), up to `parallel` marts at once, each on its own connection and in its own
 * transaction: a mart starts once every mart it reads (among `names`) has finished, so it reads their new rows; a
 * mart whose source failed is skipped. Among the marts ready to start, the one whose last refresh took longest goes
 * first (the longest chains start early, so the run ends soon after its longest mart). Results come in `names` order.
 */
async function refreshInOrder(db: Db, catalog: Catalog, names: string[], trigger: Trigger, log: (l: string) => void, full = false,
  workMem = DEFAULT_WORK_MEM, parallel = DEFAULT_PARALLEL) {
  const results = new Map<string, MartRefreshResult>();
  const failed = new Set<string>();
  const inRun = new Set(names);
  const lastMs = new Map((await db.query<{ mart: string; ms: number }>(sql`SELECT DISTINCT ON (mart) mart, duration_ms AS ms
    FROM mart_refreshes WHERE mart = ANY(${names}) AND error IS NULL AND duration_ms IS NOT NULL
    ORDER BY mart, started_at DESC, id DESC`)).map((r) => [r.mart, r.ms]));
  const waiting = [...names];
  const running = new Map<string, Promise<void>>();
  let failure: { error: unknown } | undefined;
  const ready = (n: string) => catalog.marts.get(n)!.depends.every((d) => !inRun.has(d) || results.has(d));
  const runOne = async (name: string) => {
    const m = catalog.marts.get(name)!;
    const bad = m.depends.find((d) => failed.has(d));
    if (bad) {
      const error = `skipped: ${bad} failed to refresh`;
      await db.query(sql`INSERT INTO mart_refreshes (mart, trigger, started_at, finished_at, duration_ms, error)
        VALUES (${name}, ${trigger}, now(), now(), 0, ${error})`);
      failed.add(name);
      results.set(name, { mart: name, ok: false, skipped: true, ms: 0, error });
      return;
    }
    const r = await refreshOne(db, m, trigger, full, workMem);
    if (!r.ok) {
      failed.add(name);
      log(`[reports] refresh of ${name} failed after ${r.ms} ms: ${r.error} (the previous data stays in service, marked stale)`);
    } else {
      const how = r.mode === 'incremental' ? `incremental from ${r.since!.toISOString().slice(0, 10)}` : `full: ${r.why}`;
      log(`[reports] refreshed ${name} (${how}): ${r.rows} rows in ${r.ms} ms (generation ${r.generation})`);
    }
    results.set(name, r);
  };
  while ((waiting.length && !failure) || running.size) {
    const startable = failure ? [] : waiting.filter(ready).sort((a, b) => (lastMs.get(b) ?? Infinity) - (lastMs.get(a) ?? Infinity));
    for (const name of startable.slice(0, Math.max(1, parallel) - running.size)) {
      waiting.splice(waiting.indexOf(name), 1);
      // an unexpected error (the history row could not be written) stops the run once the marts under way are done
      running.set(name, runOne(name).catch((error) => { failure ??= { error }; }).finally(() => running.delete(name)));
    }
    if (!running.size && !failure) throw new Error(`marts ${waiting.join(', ')} wait for each other (a dependency cycle)`);
    if (running.size) await Promise.race(running.values());
  }
  if (failure) throw failure.error;
  return names.map((n) => results.get(n)!);
}

export type RefreshMode = 'full' | 'incremental';

interface Plan { mode: RefreshMode; why: string; since: Date | null; epoch: number }

/** Full or incremental, and from when: decided from the mart's state inside its refresh transaction. */
async function planRefresh(q: Queryable, m: MartDef, forceFull: boolean): Promise<Plan> {
  const st = await q.one<{ as_of: Date | null; built_epoch: number | null; full_as_of: Date | null; epoch: number;
    since: Date | null; source_rebuilt: string | null; catalog_loaded: boolean }>(sql`
    SELECT m.as_of, m.built_epoch, m.full_as_of, h.epoch,
           (SELECT c.loaded_at > m.full_as_of FROM catalog_state c) AS catalog_loaded,
           date_trunc('month', m.as_of - ${m.lookback}::interval, 'UTC') AS since,
           (SELECT min(d.name) FROM report_marts d WHERE d.name = ANY(${m.depends})
              AND (d.full_as_of IS NULL OR m.full_as_of IS NULL OR d.full_as_of > m.full_as_of)) AS source_rebuilt
    FROM report_marts m CROSS JOIN history_epoch h WHERE m.name = ${m.name}`);
  if (!st) throw new Error(`mart ${m.name} is not registered (ensureMarts registers it)`);
  const full = (why: string): Plan => ({ mode: 'full', why, since: null, epoch: st.epoch });
  if (!m.incremental) return full('not @incremental');
  if (forceFull) return full('asked for');
  if (!st.as_of || !st.full_as_of || st.built_epoch === null) return full('first build');
  if (st.built_epoch !== st.epoch) return full('history rewritten since the last build');
  if (st.source_rebuilt) return full(`${st.source_rebuilt} was rebuilt`);
  if (m.readsCatalog && st.catalog_loaded) return full('the titles catalog was loaded since the last full build');
  return { mode: 'incremental', why: 'trailing window', since: st.since, epoch: st.epoch };
}

async function refreshOne(db: Db, m: MartDef, trigger: Trigger, forceFull: boolean, workMem: string): Promise<MartRefreshResult> {
  const t0 = performance.now();
  const started = await db.one<{ id: number }>(sql`INSERT INTO mart_refreshes (mart, trigger, started_at)
    VALUES (${m.name}, ${trigger}, clock_timestamp()) RETURNING id`);
  const id = started!.id;
  try {
    const done = await db.tx(async (q) => {
      const exists = await q.one<{ as_of: Date }>(sql`SELECT now() AS as_of FROM pg_class c
        WHERE c.relname = ${m.name} AND c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace`);
      if (!exists) throw new Error(`mart table ${m.name} does not exist (ensureMarts creates it)`);
      const plan = await planRefresh(q, m, forceFull);
      if (!/^\d{1,7}(kB|MB|GB)$/.test(workMem)) throw new Error(`work_mem must be a size such as 256MB (got ${JSON.stringify(workMem)})`);
      await q.query(`SET LOCAL work_mem = '${workMem}'`);
      // No JIT: over the monthly partitions of the event tables (README "Partitions") a plan's expressions are compiled
      // once per partition, and a full build's cost estimate asks for optimized, inlined code: on PostgreSQL 15
      // mart_cash_monthly spent 50 s compiling 775 functions for a 0.6 s query.
      await q.query(`SET LOCAL jit = off`);
      for (const [name, value] of m.planner) await q.query(`SET LOCAL ${name} = ${value}`); // names checked by the catalog
      // one mechanism for both modes: compute the window's rows (all of them for a full build) into a temporary
      // table — CREATE TABLE AS may run the query in parallel, INSERT … SELECT may not — then replace the mart's rows
      // from the window's first day on by them, in this transaction: readers see the old rows until commit
      const table = ident(m.name);
      const day = plan.since ? plan.since.toISOString().slice(0, 10) : null;
      await q.query(`CREATE TEMPORARY TABLE mart_build ON COMMIT DROP AS\n${m.refreshSql}`, m.usesSince ? [plan.since ?? '-infinity'] : []);
      if (day === null) {
        await q.query(`DELETE FROM ${table}`);
        await q.query(`INSERT INTO ${table} SELECT * FROM mart_build`);
      } else {
        const col = ident(m.incremental!);
        await q.query(`DELETE FROM ${table} WHERE ${col} >= $1::date`, [day]);
        await q.query(`INSERT INTO ${table} SELECT * FROM mart_build WHERE ${col} >= $1::date`, [day]);
      }
      await q.query('DROP TABLE mart_build');
      const count = await q.one<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
      const ms = Math.round(performance.now() - t0);
      const gen = await q.one<{ generation: number }>(sql`UPDATE report_marts SET generation = generation + 1, as_of = ${exists.as_of},
          last_success_id = ${id}, stale = false, last_error = NULL, last_error_at = NULL,
          built_epoch = ${plan.epoch}, full_as_of = ${plan.mode === 'full' ? sql`${exists.as_of}` : raw('full_as_of')}
        WHERE name = ${m.name} RETURNING generation`);
      if (!gen) throw new Error(`mart ${m.name} is not registered (ensureMarts registers it)`);
      await q.query(sql`UPDATE mart_refreshes SET finished_at = clock_timestamp(), duration_ms = ${ms}, rows = ${count!.n},
        generation = ${gen.generation}, mode = ${plan.mode}, since = ${plan.since} WHERE id = ${id}`);
      return { rows: count!.n, generation: gen.generation, ms, mode: plan.mode, why: plan.why, since: plan.since ?? undefined };
    }, { statementTimeoutMs: m.timeoutMs });
    noteLocalChange('report_marts');
    return { mart: m.name, ok: true, ...done };
  } catch (e: any) {
    const ms = Math.round(performance.now() - t0);
    const error = String(e?.message ?? e).slice(0, 2000);
    await db.tx(async (q) => {
      await q.query(sql`UPDATE report_marts SET stale = true, last_error = ${error}, last_error_at = now() WHERE name = ${m.name}`);
      await q.query(sql`UPDATE mart_refreshes SET finished_at = clock_timestamp(), duration_ms = ${ms}, error = ${error} WHERE id = ${id}`);
    });
    noteLocalChange('report_marts');
    return { mart: m.name, ok: false, ms, error };
  }
}

/** The recent refresh history (admin status). */
export async function refreshHistory(db: Queryable, limit = 50) {
  return db.query<{ id: number; mart: string; trigger: string; started_at: Date; finished_at: Date | null; duration_ms: number | null;
    rows: number | null; error: string | null; generation: number | null; mode: RefreshMode | null; since: Date | null }>(
    sql`SELECT id, mart, trigger, started_at, finished_at, duration_ms, rows, error, generation, mode, since FROM mart_refreshes
        ORDER BY started_at DESC, id DESC LIMIT ${limit}`);
}
