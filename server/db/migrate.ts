// Forward-only migrations: sql/schema/NNNN_slug.sql, each in its own transaction, recorded with a SHA-256 checksum.
// An advisory lock serializes concurrent migrators (several instances starting at once apply each file once).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from './index.ts';

export const SCHEMA_DIR = fileURLToPath(new URL('../../sql/schema/', import.meta.url));
const LOCK_KEY = 7_201_100_001; // arbitrary, fixed: "marquee migrations"

export interface Migration { version: number; name: string; file: string; sql: string; checksum: string }

export class MigrationError extends Error {}

export function readMigrations(dir = SCHEMA_DIR): Migration[] {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.sql')).sort();
  const seen = new Map<number, string>();
  return files.map((f) => {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(f);
    if (!m) throw new MigrationError(`${path.join(dir, f)}: migration files are named NNNN_slug.sql (lowercase slug)`);
    const version = Number(m[1]);
    if (seen.has(version)) throw new MigrationError(`${f} and ${seen.get(version)} share version ${m[1]}`);
    seen.set(version, f);
    const sql = fs.readFileSync(path.join(dir, f), 'utf8');
    return { version, name: m[2], file: path.join(dir, f), sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

export interface MigrateResult { applied: string[]; current: number }

export async function migrate(db: Db, opts: { dir?: string; log?: (l: string) => void } = {}): Promise<MigrateResult> {
  const migrations = readMigrations(opts.dir);
  const log = opts.log ?? (() => {});
  return db.withClient(async (c) => {
    await c.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    try {
      await c.query(CREATE_TABLE);
      const rows = await c.query<{ version: number; name: string; checksum: string }>(
        'SELECT version, name, checksum FROM schema_migrations ORDER BY version');
      const applied = new Map(rows.map((r) => [r.version, r]));
      for (const m of migrations) {
        const row = applied.get(m.version);
        if (row && row.checksum !== m.checksum) {
          throw new MigrationError(`${path.relative(process.cwd(), m.file)} was edited after it was applied ` +
            `(recorded checksum ${row.checksum.slice(0, 12)}…, file now ${m.checksum.slice(0, 12)}…). Applied migrations ` +
            `are immutable: restore the file and put the change in a new migration.`);
        }
      }
      const done: string[] = [];
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        await c.query('BEGIN');
        try {
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [m.version, m.name, m.checksum]);
          await c.query('COMMIT');
        } catch (err: any) {
          await c.query('ROLLBACK');
          throw new MigrationError(`${path.basename(m.file)} failed and was rolled back: ${err.message}`);
        }
        log(`applied ${path.basename(m.file)}`);
        done.push(path.basename(m.file));
      }
      return { applied: done, current: migrations.at(-1)?.version ?? 0 };
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => {});
    }
  });
}

/** The newest migration on disk, for /readyz to compare against the database. */
export function latestVersion(dir = SCHEMA_DIR): number {
  return readMigrations(dir).at(-1)?.version ?? 0;
}

export async function appliedVersion(db: Db): Promise<number> {
  const row = await db.one<{ v: number | null }>(
    `SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN NULL ELSE (SELECT max(version) FROM schema_migrations) END AS v`);
  return row?.v ?? 0;
}
