// The monthly partitions of the event tables (migration 0025, README "Partitions"): created ahead of time by the
// partitions.ensure job and, for the months it is about to write, by the simulator; an old month detached on request.
// The SQL function ensure_month_partition (0025) does the work, so the migration and this code create partitions alike.
import sql from 'sql-template-tag';
import type { Db, Queryable } from './index.ts';

/** The partitioned tables and the column each is partitioned on (by month, UTC). */
export const PARTITIONED = { watch_events: 'started_at', visits: 'at', payments: 'created_at', subscription_events: 'at' } as const;
export type PartitionedTable = keyof typeof PARTITIONED;
const TABLES = Object.keys(PARTITIONED) as PartitionedTable[];

/** How many months after the current one the job keeps partitions for. */
export const MONTHS_AHEAD = 3;

const monthStartUtc = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
const addMonths = (d: Date, n: number) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1));

/** The partition name of `table` for the month holding `month` (UTC): watch_events_2026_11. */
export function partitionName(table: PartitionedTable, month: Date): string {
  return `${table}_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}

export interface EnsuredPartition { table: PartitionedTable; month: string; movedFromDefault: number }

/**
 * Creates the missing monthly partitions of every event table for the months from `from` to `to` (both included),
 * moving rows the DEFAULT partitions hold for those months into them. Runs inside the caller's transaction (the caller
 * decides how long it may wait for the parent's lock: creating a partition takes ACCESS EXCLUSIVE on it for a moment).
 * Returns the partitions created.
 */
export async function ensurePartitions(q: Queryable, from: Date, to: Date, tables: readonly PartitionedTable[] = TABLES): Promise<EnsuredPartition[]> {
  const rows = await q.query<{ t: PartitionedTable; m: string; moved: string | null }>(sql`
    SELECT t, to_char(m, 'YYYY-MM') AS m, ensure_month_partition(t::regclass, m::date) AS moved
    FROM unnest(${[...tables]}::text[]) AS t,
         generate_series(${monthStartUtc(from).toISOString().slice(0, 10)}::date, ${monthStartUtc(to).toISOString().slice(0, 10)}::date, interval '1 month') AS m
    ORDER BY t, m`);
  return rows.filter((r) => r.moved !== null).map((r) => ({ table: r.t, month: r.m, movedFromDefault: Number(r.moved) }));
}

/**
 * What the partitions.ensure job does (server/jobs/registry.ts): the current month and MONTHS_AHEAD after it exist for
 * every event table, so writes land in their month's partition, not in DEFAULT. Creating a partition waits at most 5 s
 * for the parent's lock (a busy table is tried again at the next tick). Then the parents are analyzed: autovacuum
 * analyzes partitions but never a partitioned parent, whose statistics plan joins over all months (the churn features).
 */
export async function ensureAhead(db: Db, now: Date): Promise<EnsuredPartition[]> {
  const created = await db.tx(async (q) => {
    await q.query(`SET LOCAL lock_timeout = '5s'`);
    return ensurePartitions(q, now, addMonths(now, MONTHS_AHEAD));
  }, { statementTimeoutMs: 0 });
  await db.tx((q) => q.query(`ANALYZE ${TABLES.join(', ')}`), { statementTimeoutMs: 0 });
  return created;
}

export class PartitionError extends Error {}

/**
 * Detaches the month holding `month` from `table`: its rows leave the table (reports, marts, the billing code no
 * longer see them) and stay in a table of their own, under the same name, to be dumped or dropped (README
 * "Partitions"). Refused for the current month and later ones (their writes would land in DEFAULT). Payment keys of a
 * detached month stay in payment_keys: such a key is never charged again. Returns the detached table's name.
 */
export async function detachMonth(db: Db, table: PartitionedTable, month: Date, now = new Date()): Promise<string> {
  if (!(table in PARTITIONED)) throw new PartitionError(`${table} is not a partitioned event table`);
  if (monthStartUtc(month) >= monthStartUtc(now)) throw new PartitionError(`only a month before the current one is detached`);
  const name = partitionName(table, month);
  return db.tx(async (q) => {
    const part = await q.one<{ ok: boolean }>(sql`SELECT true AS ok FROM pg_inherits i
      WHERE i.inhparent = ${table}::regclass AND i.inhrelid = to_regclass(${name})`);
    if (!part) throw new PartitionError(`${name} is not a partition of ${table}`);
    await q.query(`ALTER TABLE ${table} DETACH PARTITION ${name}`); // both names checked above
    return name;
  });
}
