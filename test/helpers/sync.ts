// Synchronising tests on events instead of sleeps: poll a condition up to a generous deadline (a slow machine only
// makes the test slower, never wrong), and hold a lock in an open transaction that the code under test provably waits
// on (seen in pg_stat_activity) — instead of pg_sleep and a guess at how long the other side takes.
import { withConnection } from '../../server/db/index.ts';
import type { Db } from '../../server/db/index.ts';

/** Resolves with the first truthy value of `check`, polled every `everyMs`; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, opts: { timeoutMs?: number; everyMs?: number } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 20));
  }
}

export interface Held { release(): Promise<void> }

/** Runs `statements` in a transaction on its own connection and keeps it open (locks held) until release(). */
export async function holdInTransaction(url: string, statements: string[]): Promise<Held> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let ready!: () => void, failed!: (e: unknown) => void;
  const holding = new Promise<void>((res, rej) => { ready = res; failed = rej; });
  const done = withConnection(url, async (c) => {
    await c.query('BEGIN');
    try {
      for (const s of statements) await c.query(s);
      ready();
      await released;
    } finally {
      await c.query('ROLLBACK');
    }
  }).catch((e) => { failed(e); throw e; });
  await holding;
  return { async release() { release(); await done; } };
}

/** Waits until a backend whose query starts with `queryPrefix` is blocked on a lock (wait_event_type 'Lock'). */
export function waitForLockWaiter(db: Db, queryPrefix: string, timeoutMs = 60_000) {
  return waitFor(`a backend running "${queryPrefix}…" to wait on a lock`, async () =>
    (await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND starts_with(query, $1)`, [queryPrefix]))!.n > 0,
  { timeoutMs });
}

/** Waits until a backend of this database waits on a lock of that kind (`relation`: a table lock; `advisory`), one
 *  with that application_name when given. */
export function waitForLockWait(db: Db, what: string, kind: 'relation' | 'advisory', applicationName?: string) {
  return waitFor(what, async () => (await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1
      AND ($2::text IS NULL OR application_name = $2)`, [kind, applicationName ?? null]))!.n > 0);
}
