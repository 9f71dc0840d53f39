// Marts: materialized views from sql/reports/marts. Created when missing, re-created when their definition hash
// changed, refreshed CONCURRENTLY (readers keep reading) in dependency order under one advisory lock, with a
// history row per attempt. A failed refresh leaves the last good data in place and marks the mart stale.
import sql, { raw } from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import { ident } from '../db/index.ts';
import { runExclusive } from '../jobs/index.ts';
import type { Catalog, MartDef } from './catalog.ts';
import { withDependents } from './catalog.ts';
import { previousFire } from './cron-time.ts';

export const REFRESH_LOCK = 'reports.marts.refresh';
const ENSURE_LOCK = 7_201_100_006; // "marquee report marts DDL"

export class MartSqlError extends Error {}

/** `file:line reason` for a database error raised by SQL that starts at `sqlLine` of `file`, after `prefix` text. */
export function locate(file: string, sqlLine: number, statement: string, prefixLen: number, err: any): string {
  const pos = Number(err?.position);
  let line = sqlLine;
  if (pos > prefixLen) line += (statement.slice(prefixLen, pos - 1).match(/\n/g) ?? []).length;
  return `${file}:${line} ${err?.message ?? String(err)}`;
}

export interface EnsureResult { created: string[]; recreated: string[] }

/** Creates missing marts (WITH NO DATA: the first refresh fills them) and re-creates the ones whose file changed. */
export async function ensureMarts(db: Db, catalog: Catalog, opts: { log?: (l: string) => void } = {}): Promise<EnsureResult> {
  const log = opts.log ?? (() => {});
  const result: EnsureResult = { created: [], recreated: [] };
  await db.tx(async (q) => {
    // several instances starting at once: one does the DDL, the others then find nothing to do
    await q.query(sql`SELECT pg_advisory_xact_lock(${ENSURE_LOCK})`);
    const known = new Map((await q.query<{ name: string; definition_hash: string }>(
      sql`SELECT name, definition_hash FROM report_marts`)).map((r) => [r.name, r.definition_hash]));
    for (const name of catalog.martOrder) {
      const m = catalog.marts.get(name)!;
      const kind = await q.one<{ relkind: string }>(sql`SELECT c.relkind FROM pg_class c
        WHERE c.relname = ${name} AND c.relnamespace = current_schema()::regnamespace`);
      if (kind && kind.relkind !== 'm') throw new MartSqlError(`${m.file}:1 ${name} already exists and is not a materialized view`);
      if (kind && known.get(name) === m.hash) continue;
      if (kind) {
        // CASCADE drops the marts that read this one; they come later in the order and are created again
        await q.query(`DROP MATERIALIZED VIEW ${ident(name)} CASCADE`);
        result.recreated.push(name);
      } else result.created.push(name);
      const prefix = `CREATE MATERIALIZED VIEW ${ident(name)} AS\n`;
      const statement = `${prefix}${m.sql}\nWITH NO DATA`;
      try {
        await q.query('SAVEPOINT mart_create');
        await q.query(statement);
        await q.query('RELEASE SAVEPOINT mart_create');
      } catch (e: any) {
        throw new MartSqlError(locate(m.file, m.sqlLine, statement, prefix.length, e));
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
          last_error = NULL, last_error_at = NULL`);
    }
  });
  for (const n of result.created) log(`[reports] created mart ${n}`);
  for (const n of result.recreated) log(`[reports] re-created mart ${n} (its definition changed)`);
  const orphans = await db.query<{ name: string }>(sql`SELECT name FROM report_marts WHERE name <> ALL(${catalog.martOrder}) ORDER BY name`);
  for (const o of orphans) log(`[reports] mart ${o.name} has no file any more; left in place (DROP MATERIALIZED VIEW it by hand)`);
  return result;
}

function indexName(mart: string, suffix: string) {
  return `${mart.slice(0, 62 - suffix.length)}_${suffix}`;
}

/** Plans every report's SQL (EXPLAIN, parameters bound as NULL or their defaults' types) so a broken query stops the start. */
export async function checkReportSql(db: Db, catalog: Catalog): Promise<void> {
  const problems: string[] = [];
  for (const r of catalog.reports.values()) {
    const prefix = 'EXPLAIN ';
    try {
      await db.tx((q) => q.query(prefix + r.sql, r.bindOrder.map(() => null)), { readOnly: true, statementTimeoutMs: 10_000 });
    } catch (e: any) {
      problems.push(locate(r.file, r.sqlLine, prefix + r.sql, prefix.length, e));
    }
  }
  if (problems.length) throw new MartSqlError(`report SQL does not plan:\n  ${problems.join('\n  ')}`);
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
  error?: string;
}

export interface RefreshOutcome { ran: boolean; results: MartRefreshResult[] }

export interface RefreshOptions {
  /** these marts only (default: all) */
  only?: string[];
  /** also the marts that read them, so derived marts never lag behind their sources */
  cascade?: boolean;
  trigger?: Trigger;
  log?: (l: string) => void;
}

/**
 * Refreshes marts in dependency order under the refresh advisory lock. Another run holding the lock (this
 * instance or another) makes this call return { ran: false } at once: an overlapping run is skipped, not queued.
 */
export async function refreshMarts(db: Db, catalog: Catalog, opts: RefreshOptions = {}): Promise<RefreshOutcome> {
  const unknown = (opts.only ?? []).filter((n) => !catalog.marts.has(n));
  if (unknown.length) throw new Error(`unknown mart ${unknown.join(', ')}`);
  const names = opts.only ? (opts.cascade ? withDependents(catalog, opts.only) : catalog.martOrder.filter((n) => opts.only!.includes(n))) : catalog.martOrder;
  const r = await runExclusive(db, REFRESH_LOCK, () => refreshInOrder(db, catalog, names, opts.trigger ?? 'manual', opts.log ?? (() => {})));
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
  trigger: Trigger = 'schedule'): Promise<RefreshOutcome> {
  const r = await runExclusive(db, REFRESH_LOCK, async () => {
    const due = await dueMarts(db, catalog, now);
    return due.length ? refreshInOrder(db, catalog, due, trigger, log) : [];
  });
  return r.ran ? { ran: true, results: r.result } : { ran: false, results: [] };
}

async function refreshInOrder(db: Db, catalog: Catalog, names: string[], trigger: Trigger, log: (l: string) => void) {
  const results: MartRefreshResult[] = [];
  const failed = new Set<string>();
  for (const name of names) {
    const m = catalog.marts.get(name)!;
    const bad = m.depends.find((d) => failed.has(d));
    if (bad) {
      const error = `skipped: ${bad} failed to refresh`;
      await db.query(sql`INSERT INTO mart_refreshes (mart, trigger, started_at, finished_at, duration_ms, error)
        VALUES (${name}, ${trigger}, now(), now(), 0, ${error})`);
      results.push({ mart: name, ok: false, skipped: true, ms: 0, error });
      failed.add(name);
      continue;
    }
    const r = await refreshOne(db, m, trigger);
    results.push(r);
    if (!r.ok) {
      failed.add(name);
      log(`[reports] refresh of ${name} failed after ${r.ms} ms: ${r.error} (the previous data stays in service, marked stale)`);
    } else log(`[reports] refreshed ${name}: ${r.rows} rows in ${r.ms} ms (generation ${r.generation})`);
  }
  return results;
}

async function refreshOne(db: Db, m: MartDef, trigger: Trigger): Promise<MartRefreshResult> {
  const t0 = performance.now();
  const started = await db.one<{ id: number }>(sql`INSERT INTO mart_refreshes (mart, trigger, started_at)
    VALUES (${m.name}, ${trigger}, clock_timestamp()) RETURNING id`);
  const id = started!.id;
  try {
    const done = await db.tx(async (q) => {
      const v = await q.one<{ populated: boolean; as_of: Date }>(sql`SELECT ispopulated AS populated, now() AS as_of
        FROM pg_matviews WHERE matviewname = ${m.name} AND schemaname = current_schema()`);
      if (!v) throw new Error(`materialized view ${m.name} does not exist (ensureMarts creates it)`);
      // CONCURRENTLY needs existing contents to diff against; the very first fill is a plain refresh
      await q.query(`REFRESH MATERIALIZED VIEW ${v.populated ? 'CONCURRENTLY ' : ''}${ident(m.name)}`);
      const count = await q.one<{ n: number }>(`SELECT count(*) AS n FROM ${ident(m.name)}`);
      const ms = Math.round(performance.now() - t0);
      const gen = await q.one<{ generation: number }>(sql`UPDATE report_marts SET generation = generation + 1, as_of = ${v.as_of},
          last_success_id = ${id}, stale = false, last_error = NULL, last_error_at = NULL
        WHERE name = ${m.name} RETURNING generation`);
      if (!gen) throw new Error(`mart ${m.name} is not registered (ensureMarts registers it)`);
      await q.query(sql`UPDATE mart_refreshes SET finished_at = clock_timestamp(), duration_ms = ${ms}, rows = ${count!.n},
        generation = ${gen.generation} WHERE id = ${id}`);
      return { rows: count!.n, generation: gen.generation, ms };
    }, { statementTimeoutMs: m.timeoutMs });
    return { mart: m.name, ok: true, ...done };
  } catch (e: any) {
    const ms = Math.round(performance.now() - t0);
    const error = String(e?.message ?? e).slice(0, 2000);
    await db.tx(async (q) => {
      await q.query(sql`UPDATE report_marts SET stale = true, last_error = ${error}, last_error_at = now() WHERE name = ${m.name}`);
      await q.query(sql`UPDATE mart_refreshes SET finished_at = clock_timestamp(), duration_ms = ${ms}, error = ${error} WHERE id = ${id}`);
    });
    return { mart: m.name, ok: false, ms, error };
  }
}

/** The recent refresh history (admin status). */
export async function refreshHistory(db: Queryable, limit = 50) {
  return db.query<{ id: number; mart: string; trigger: string; started_at: Date; finished_at: Date | null; duration_ms: number | null;
    rows: number | null; error: string | null; generation: number | null }>(
    sql`SELECT id, mart, trigger, started_at, finished_at, duration_ms, rows, error, generation FROM mart_refreshes
        ORDER BY started_at DESC, id DESC LIMIT ${limit}`);
}
