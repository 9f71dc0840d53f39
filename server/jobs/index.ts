// Scheduled jobs (mart refreshes, renewals, dunning, session sweeps). node-cron fires them; a PostgreSQL advisory
// lock makes each run happen once across server instances, and an overlapping run is skipped, not queued.
import cron, { type ScheduledTask } from 'node-cron';
import { createHash } from 'node:crypto';
import type { Db } from '../db/index.ts';

export interface Job {
  name: string;
  /** node-cron expression (5 or 6 fields), UTC. */
  schedule: string;
  run(db: Db, now: Date): Promise<unknown>;
}

export type JobOutcome = { ran: true; result: unknown } | { ran: false; reason: 'locked' };

/** Stable advisory-lock key for a job name (64-bit from SHA-256). */
export function lockKey(name: string): bigint {
  return createHash('sha256').update(`marquee:job:${name}`).digest().readBigInt64BE(0);
}

/** Run a job now under its advisory lock; skipped (ran: false) when another run holds it, here or elsewhere. */
export async function runExclusive<T>(db: Db, name: string, fn: () => Promise<T>): Promise<{ ran: true; result: T } | { ran: false; reason: 'locked' }> {
  return db.withClient(async (c) => {
    const key = lockKey(name).toString();
    const got = await c.one<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key]);
    if (!got?.ok) return { ran: false as const, reason: 'locked' as const };
    try {
      return { ran: true as const, result: await fn() };
    } finally {
      await c.query('SELECT pg_advisory_unlock($1::bigint)', [key]);
    }
  });
}

export interface Scheduler { tasks: Map<string, ScheduledTask>; stop(): Promise<void> }

export function startJobs(db: Db, jobs: Job[], log = (l: string) => console.log(l), now = () => new Date()): Scheduler {
  const tasks = new Map<string, ScheduledTask>();
  const running = new Set<Promise<unknown>>();
  for (const job of jobs) {
    if (!cron.validate(job.schedule)) throw new Error(`job ${job.name}: invalid cron expression "${job.schedule}"`);
    const task = cron.schedule(job.schedule, () => {
      const p = runExclusive(db, job.name, () => job.run(db, now()))
        .then((r) => { if (!r.ran) log(`[jobs] ${job.name}: skipped, another run holds the lock`); })
        .catch((e) => log(`[jobs] ${job.name} failed: ${e.message}`))
        .finally(() => running.delete(p));
      running.add(p);
      return p;
    }, { name: job.name, timezone: 'Etc/UTC', noOverlap: true });
    tasks.set(job.name, task);
  }
  return {
    tasks,
    async stop() {
      for (const t of tasks.values()) await t.stop();
      await Promise.allSettled([...running]);
    },
  };
}
