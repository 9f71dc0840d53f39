// Each test file gets its own database, cloned from the migrated template the runner built (CREATE DATABASE … TEMPLATE).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createDb, withConnection, withDatabase, ident, type Db } from '../../server/db/index.ts';

export function serverUrl(): string {
  const url = process.env.MARQUEE_TEST_SERVER_URL;
  if (!url) throw new Error('run tests through "npm test" (or "tsx test/run.ts <file>"): MARQUEE_TEST_SERVER_URL is not set');
  return url;
}

export interface TestDatabase { name: string; url: string; db: Db; drop(): Promise<void> }

export async function createDatabase(opts: { empty?: boolean; label?: string } = {}): Promise<TestDatabase> {
  const label = (opts.label ?? path.basename(process.argv[1] ?? 'test').replace(/\.test\.ts$/, ''))
    .toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 24);
  const name = `mqt_${process.env.MARQUEE_TEST_RUN_ID ?? 'x'}_${label}_${randomBytes(4).toString('hex')}`.slice(0, 63);
  const template = opts.empty ? 'template0' : process.env.MARQUEE_TEST_TEMPLATE!;
  const admin = serverUrl();
  await withConnection(admin, (c) => c.query(`CREATE DATABASE ${ident(name)} TEMPLATE ${ident(template)}`));
  const url = withDatabase(admin, name);
  const db = createDb(url, { max: 10, onError: () => {} });
  return {
    name, url, db,
    async drop() {
      await db.close().catch(() => {});
      await withConnection(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`));
    },
  };
}

/** For uvu suites: a fresh database before the first test, dropped after the last. */
export function useDatabase(suite: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void },
  opts: { empty?: boolean } = {}) {
  let current: TestDatabase | undefined;
  suite.before(async () => { current = await createDatabase(opts); });
  suite.after(async () => {
    await current?.drop();
    // A leaked handle (socket, timer) must not hang the run: exit after the suite if nothing else does (20 s: a file's
    // own after-hooks, e.g. dropping a second database, may still be running on a loaded machine).
    setTimeout(() => process.exit(process.exitCode ?? 0), 20_000).unref();
  });
  return {
    get db(): Db { if (!current) throw new Error('database not ready (used outside a test?)'); return current.db; },
    get url(): string { return current!.url; },
    get name(): string { return current!.name; },
  };
}
