// The bulk-load recipe shared by the titles ETL and the simulator. Inserting millions of rows into indexed tables
// costs more in index maintenance (and row-by-row foreign-key checks) than in the rows themselves, so a big load
// drops the tables' indexes — primary and unique keys as constraints — and, when asked, their foreign keys, then
// re-creates everything from the catalog's own definitions inside the same transaction: PostgreSQL builds each index
// with one sort, re-checks every key and validates each foreign key in one set-based pass, so integrity is checked
// exactly as strictly. Indexes a foreign key references stay (dropping them would need dropping that key too).
// Dropping takes ACCESS EXCLUSIVE locks on the tables until commit; a rollback brings everything back. Where allowed,
// a load keeps the foreign keys instead, skips their row-by-row triggers and verifies them in bulk (verifyForeignKeys).
import type { Queryable } from './index.ts';

export interface BulkRebuild {
  /** how many indexes and constraints were dropped */
  dropped: number;
  /** re-creates them: keys and indexes first, foreign keys last (their validation reads the rebuilt tables); `log`
   *  hears each statement that took a second or more, with its time (on a big load they take minutes in all, and
   *  which one dominates is worth knowing; on a small one they would only be noise) */
  rebuild(log?: (line: string) => void): Promise<void>;
}

export async function dropForBulkLoad(q: Queryable, tables: string[], opts: { foreignKeys: boolean }): Promise<BulkRebuild> {
  const defs = await q.query<{ drop: string; add: string; fk: boolean }>(`
    SELECT drop, add, fk FROM (
      SELECT true AS fk, c.conname::text AS name,
        format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname) AS drop,
        format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) AS add
      FROM pg_constraint c WHERE $2 AND c.contype = 'f' AND c.conrelid::regclass::text = ANY($1)
      UNION ALL
      SELECT false, i.indexrelid::regclass::text,
        CASE WHEN c.oid IS NULL THEN format('DROP INDEX %s', i.indexrelid::regclass)
             ELSE format('ALTER TABLE %s DROP CONSTRAINT %I', i.indrelid::regclass, c.conname) END,
        -- a partitioned table's index is defined ON ONLY the parent: rebuilt on every partition
        CASE WHEN c.oid IS NULL THEN regexp_replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
             ELSE format('ALTER TABLE %s ADD CONSTRAINT %I %s', i.indrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) END
      FROM pg_index i
      LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')
      WHERE i.indrelid::regclass::text = ANY($1)
        AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
    ) d ORDER BY fk DESC, name`, [tables, opts.foreignKeys]);
  // names from the catalog, quoted by regclass / format('%I'); foreign keys go first (they depend on the keys)
  for (const d of defs) await q.query(d.drop);
  return {
    dropped: defs.length,
    async rebuild(log) {
      if (!defs.length) return;
      // Each index is built by one sort; with the rows of a big load it spills to disk unless it has room. 1GB per build
      // (one at a time, inside this transaction) is a fraction of any machine that loads tens of millions of rows.
      await q.query(`SET LOCAL maintenance_work_mem = '1GB'`);
      for (const d of [...defs.filter((x) => !x.fk), ...defs.filter((x) => x.fk)]) {
        const t0 = performance.now();
        await q.query(d.add);
        const s = (performance.now() - t0) / 1000;
        if (s >= 1) log?.(`  ${s.toFixed(1).padStart(6)} s  ${d.add.length > 110 ? `${d.add.slice(0, 107)}…` : d.add}`);
      }
    },
  };
}

/** A single-column foreign key: child table, its column, and the parent table (whose key is `id`). */
export type ForeignKey = readonly [table: string, column: string, parent: string];

export class ForeignKeyViolation extends Error {}

/**
 * Whether a bulk load into `tables` may run without their row-by-row RI triggers (session_replication_role = replica)
 * and verify `keys` itself afterwards: only if this role may set that, and the tables carry exactly these foreign keys
 * (one column each, referencing the parent's id) and no trigger that replica mode would skip but the change
 * notifications of 0007_change_notify.sql, which fire on updates and deletes only, and the viewing-history
 * notifications of 0018_browse_speed.sql and the subscriptions' of 0021_subscriptions_notify.sql, whose one message for every
 * user the caller sends itself (a trigger someone adds later must
 * fire: then the load takes the slow path, unless it is ENABLE ALWAYS, which fires under replica too — the catalog
 * generation's, 0020_catalog_generation.sql). It first locks the tables against other writers and their parents against changes
 * (SHARE: the skipped triggers would have locked each referenced row), so what it checks and what the verification
 * finds stay true until commit.
 */
export async function mayVerifyForeignKeysInBulk(q: Queryable, tables: string[], keys: ForeignKey[]): Promise<boolean> {
  const parents = [...new Set(keys.map(([, , p]) => p))].filter((p) => !tables.includes(p));
  // identifiers from the callers' constant lists only
  await q.query(`LOCK TABLE ${tables.join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
  if (parents.length) await q.query(`LOCK TABLE ${parents.join(', ')} IN SHARE MODE`);
  const r = await q.one<{ allowed: boolean; fks: string[]; user_triggers: number }>(`
    SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
             OR has_parameter_privilege('session_replication_role', 'SET') AS allowed,
           (SELECT coalesce(array_agg(c.conrelid::regclass::text || '.' || a.attname || '>' || c.confrelid::regclass::text
                     || '.' || pa.attname || CASE WHEN cardinality(c.conkey) = 1 THEN '' ELSE '+' END ORDER BY 1), '{}')
              FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
              JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
             WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY($1)) AS fks,
           (SELECT count(*)::int FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid::regclass::text = ANY($1)
               AND t.tgfoid NOT IN ('notify_change'::regproc, 'notify_user_rows'::regproc) AND t.tgenabled <> 'A') AS user_triggers`,
    [tables]);
  if (!r?.allowed || r.user_triggers > 0) return false;
  const known = keys.map(([t, c, p]) => `${t}.${c}>${p}.id`).sort();
  return JSON.stringify([...r.fks].sort()) === JSON.stringify(known);
}

/**
 * Verifies each foreign key over all rows, as ALTER TABLE … VALIDATE would, and throws ForeignKeyViolation on the first
 * dangling reference. A load that created a parent's rows with consecutive ids passes their range: once the range is
 * proven complete (count of parent ids in it = its width; ids are unique), a reference inside it needs no lookup; only
 * references outside it — older rows, or a bug — are looked up, by anti-join. That turns a hash join per row over
 * millions of rows into a range test, with the same guarantee.
 */
export async function verifyForeignKeys(q: Queryable, keys: ForeignKey[], ranges: Record<string, [lo: number, hi: number]>,
  log: (l: string) => void = () => {}) {
  const dense: Record<string, [number, number]> = {};
  for (const [parent, [lo, hi]] of Object.entries(ranges)) {
    if (hi < lo) continue;
    const have = await q.one<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${parent} WHERE id BETWEEN $1 AND $2`, [lo, hi]);
    if (have!.n === hi - lo + 1) dense[parent] = [lo, hi]; // else (cannot happen for a load's own ids): look every row up
  }
  await q.query(`SET LOCAL work_mem = '256MB'`); // the anti-joins' hash of a parent fits in memory
  for (const [table, column, parent] of keys) {
    const t0 = performance.now();
    const range = dense[parent];
    // identifiers from the callers' constant lists only
    const bad = await q.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} c WHERE c.${column} IS NOT NULL
      ${range ? `AND c.${column} NOT BETWEEN ${Number(range[0])} AND ${Number(range[1])}` : ''}
      AND NOT EXISTS (SELECT 1 FROM ${parent} p WHERE p.id = c.${column})`);
    if (bad!.n > 0) throw new ForeignKeyViolation(`${bad!.n} rows of ${table}.${column} reference no ${parent} row`);
    const s = (performance.now() - t0) / 1000;
    if (s >= 1) log(`  ${s.toFixed(1).padStart(6)} s  verified ${table}.${column} → ${parent}${range ? ` (ids ${range[0]}..${range[1]} proven complete)` : ''}`);
  }
}
