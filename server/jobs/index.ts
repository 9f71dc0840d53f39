// The scheduler of the jobs registry.ts lists (sweeps, billing renewals and dunning, mart refreshes). Each tick is
// claimed once across instances: every second of its clock an instance asks which jobs' cron expressions (UTC,
// node-cron syntax) fire at that whole second, and claims (job, that instant) by inserting a job_runs row with ON
// CONFLICT DO NOTHING — the instance that inserts runs the tick, every other one skips it. Two instances whose clocks
// differ by less than a second name the same instant, so each tick runs once (not merely "not at the same time").
// The claimer holds a lease on the row (lease_until, renewed while the job runs). A run that died mid-way — the process
// killed, or its connection gone before the finish was recorded — leaves an unfinished row whose lease expires; the
// recovery pass (every lease period, and at start) claims it again and runs the job again, so a job must tolerate
// being run twice for one tick after a crash (at-least-once across crashes, exactly-once otherwise). A run that
// failed with an error is recorded as failed and not repeated: its next tick is the retry.
// An advisory lock per job still keeps two runs of one job from overlapping (a run longer than the interval): the
// overlapping tick is recorded as skipped.
import cron from 'node-cron';
import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Db } from '../db/index.ts';
import { firesAt } from '../reports/cron-time.ts';

export interface Tick {
  /** the instant (whole second, UTC) the schedule fired at: the run's key in job_runs */
  scheduledAt: Date;
  /** 1 for the first run of this tick, more when a run that died is run again */
  attempt: number;
}

export interface Job {
  name: string;
  /** node-cron expression (5 or 6 fields), UTC. */
  schedule: string;
  run(db: Db, now: Date, tick?: Tick): Promise<unknown>;
}

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
    let result: T, failure: { error: unknown } | undefined;
    try { result = await fn(); } catch (error) { failure = { error }; }
    // The unlock fails when the connection holding the lock died (the server released the lock with it): that throws
    // too, so withClient destroys the connection rather than pool it — a connection must never keep a lock it was
    // meant to drop. The job's own error, when there was one, is the one reported.
    try { await c.query('SELECT pg_advisory_unlock($1::bigint)', [key]); } catch (e) { if (!failure) throw e; }
    if (failure) throw failure.error;
    return { ran: true as const, result: result! };
  });
}

export interface Scheduler {
  /** this instance's name in job_runs.claimed_by */
  readonly instance: string;
  stop(): Promise<void>;
}

export interface JobsOptions {
  /** How long a claim holds without renewal (default 60 s); renewed every third of it while the job runs. A run whose
   *  lease expired unfinished is run again by the recovery pass, which also runs once per lease period. */
  leaseMs?: number;
  /** claimed_by (default host:pid:random) */
  instance?: string;
}

/** Seconds of missed ticks caught up after the event loop was blocked (or the machine suspended); older are dropped. */
const CATCH_UP_MS = 60_000;

export function startJobs(db: Db, jobs: Job[], log = (l: string) => console.log(l), now = () => new Date(),
  opts: JobsOptions = {}): Scheduler {
  for (const job of jobs) {
    if (!cron.validate(job.schedule)) throw new Error(`job ${job.name}: invalid cron expression "${job.schedule}"`);
  }
  const leaseMs = opts.leaseMs ?? 60_000;
  const instance = opts.instance ?? `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const busy = new Set<string>(); // jobs running in this process (a tick arriving meanwhile is left to other instances)
  const running = new Set<Promise<unknown>>();
  let stopped = false;
  const track = (p: Promise<unknown>) => { running.add(p); void p.finally(() => running.delete(p)); };
  const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');

  async function execute(job: Job, tick: Tick) {
    const key = [job.name, tick.scheduledAt] as const;
    const renew = setInterval(() => {
      db.query(`UPDATE job_runs SET lease_until = now() + $3 * interval '1 millisecond'
        WHERE job = $1 AND scheduled_at = $2 AND claimed_by = $4 AND finished_at IS NULL`, [...key, leaseMs, instance]).catch(() => {});
    }, Math.max(100, leaseMs / 3));
    let outcome: 'done' | 'failed' | 'skipped' = 'done', error: string | null = null;
    try {
      const r = await runExclusive(db, job.name, () => job.run(db, now(), tick));
      if (!r.ran) { outcome = 'skipped'; error = 'another run of this job holds its lock'; log(`[jobs] ${job.name} @ ${iso(tick.scheduledAt)}: skipped, another run holds the lock`); }
    } catch (e: any) {
      outcome = 'failed';
      error = String(e?.message ?? e).slice(0, 2000);
      log(`[jobs] ${job.name} @ ${iso(tick.scheduledAt)} failed: ${error} (its next tick runs it again)`);
    } finally {
      clearInterval(renew);
    }
    await db.query(`UPDATE job_runs SET finished_at = now(), outcome = $3, error = $4 WHERE job = $1 AND scheduled_at = $2 AND claimed_by = $5`,
      [...key, outcome, error, instance])
      .catch((e) => log(`[jobs] ${job.name} @ ${iso(tick.scheduledAt)}: could not record its end (${e.message}); it runs again when its lease expires`));
  }

  function fire(job: Job, at: Date) {
    if (busy.has(job.name)) { log(`[jobs] ${job.name} @ ${iso(at)}: previous run still running here, not claimed`); return; }
    busy.add(job.name);
    track((async () => {
      try {
        const claimed = await db.one<{ attempts: number }>(`INSERT INTO job_runs (job, scheduled_at, claimed_by, lease_until)
          VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond') ON CONFLICT (job, scheduled_at) DO NOTHING RETURNING attempts`,
          [job.name, at, instance, leaseMs]);
        if (claimed) await execute(job, { scheduledAt: at, attempt: claimed.attempts });
      } catch (e: any) {
        log(`[jobs] ${job.name} @ ${iso(at)}: could not claim (${e.message}); its next tick runs it`);
      } finally {
        busy.delete(job.name);
      }
    })());
  }

  // Runs whose lease expired unfinished: claim them again (FOR UPDATE SKIP LOCKED + the lease re-checked, so one
  // instance wins) and run them once more.
  async function recover() {
    const idle = [...byName.keys()].filter((n) => !busy.has(n));
    if (!idle.length) return;
    const rows = await db.query<{ job: string; scheduled_at: Date; attempts: number }>(`UPDATE job_runs r
      SET claimed_by = $2, claimed_at = now(), lease_until = now() + $3 * interval '1 millisecond', attempts = r.attempts + 1
      FROM (SELECT job, scheduled_at FROM job_runs WHERE finished_at IS NULL AND lease_until < now() AND job = ANY($1)
            ORDER BY scheduled_at LIMIT 20 FOR UPDATE SKIP LOCKED) stale
      WHERE r.job = stale.job AND r.scheduled_at = stale.scheduled_at AND r.lease_until < now()
      RETURNING r.job, r.scheduled_at, r.attempts`, [idle, instance, leaseMs]);
    for (const r of rows.sort((a, b) => a.scheduled_at.getTime() - b.scheduled_at.getTime())) {
      const job = byName.get(r.job)!;
      log(`[jobs] ${job.name} @ ${iso(r.scheduled_at)}: its run died unfinished; running it again (attempt ${r.attempts})`);
      while (busy.has(job.name)) await new Promise((res) => setTimeout(res, 200));
      busy.add(job.name);
      try { await execute(job, { scheduledAt: r.scheduled_at, attempt: r.attempts }); } finally { busy.delete(job.name); }
    }
  }
  let recovering = false;
  const recoverPass = () => {
    if (stopped || recovering) return;
    recovering = true;
    track(recover().catch((e) => log(`[jobs] recovery pass failed: ${e.message}`)).finally(() => { recovering = false; }));
  };

  // One timer for all jobs, driven by `now` (injectable: tests skew it): just after each whole second of this clock,
  // every second since the last look is checked against every schedule.
  let last = Math.floor(now().getTime() / 1000) * 1000;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    if (stopped) return;
    const cur = Math.floor(now().getTime() / 1000) * 1000;
    for (let s = Math.max(last + 1000, cur - CATCH_UP_MS); s <= cur; s += 1000) {
      const at = new Date(s);
      for (const job of jobs) if (firesAt(job.schedule, at)) fire(job, at);
    }
    last = Math.max(last, cur);
    timer = setTimeout(tick, 1000 - (now().getTime() % 1000) + 2);
  };
  timer = setTimeout(tick, 1000 - (now().getTime() % 1000) + 2);
  const recovery = setInterval(recoverPass, leaseMs);
  recoverPass();

  return {
    instance,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(recovery);
      while (running.size) await Promise.allSettled([...running]);
    },
  };
}
