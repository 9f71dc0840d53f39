// The bulk-load recipe shared by the titles ETL and the simulator. Inserting millions of rows into indexed tables
// costs more in index maintenance (and row-by-row foreign-key checks) than in the rows themselves, so a big load
// drops the tables' indexes — primary and unique keys as constraints — and, when asked, their foreign keys, then
// re-creates everything from the catalog's own definitions inside the same transaction: PostgreSQL builds each index
// with one sort, re-checks every key and validates each foreign key in one set-based pass, so integrity is checked
// exactly as strictly. Indexes a foreign key references stay (dropping them would need dropping that key too).
// Dropping takes ACCESS EXCLUSIVE locks on the tables until commit; a rollback brings everything back.
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
        CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.indexrelid)
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
