// Every scheduled job of the product, in one list. Features add theirs here.
import type { AppDeps } from '../types.ts';
import type { Config } from '../config.ts';
import type { Job } from './index.ts';
import { sweepThrottle } from '../auth/throttle.ts';
import { martRefreshJobs } from '../reports/jobs.ts';

export function scheduledJobs(deps: Pick<AppDeps, 'catalog' | 'log' | 'config'>): Job[] {
  return [
    {
      name: 'sessions.sweep',
      schedule: '*/15 * * * *',
      run: (db) => db.query(`DELETE FROM sessions WHERE expires_at < now()`),
    },
    // sign-in throttling (issue 5): attempts older than a day, expired known-device cookies
    { name: 'login-throttle.sweep', schedule: '7 * * * *', run: (db, now) => sweepThrottle(db, now) },
    // report marts (issue 6): one job per distinct @refresh schedule, refreshing due marts in dependency order
    ...martRefreshJobs(deps.catalog, deps.log, deps.config.martWorkMem),
    // the claim table of these jobs (server/jobs): a week of history is kept
    { name: 'job-runs.sweep', schedule: '41 * * * *', run: (db) => db.query(`DELETE FROM job_runs WHERE scheduled_at < now() - interval '7 days'`) },
    ...testJobs(deps.config),
  ];
}

/**
 * TEST ONLY (test/faults.test.ts runs two server processes against one database): config.testTickJob
 * (MARQUEE_TEST_TICK_JOB=1) adds a job "test.tick" firing every second that logs `[jobs] test.tick ran for <instant>
 * attempt <n>`; config.testClockSkewMs (MARQUEE_TEST_CLOCK_SKEW_MS) shifts the scheduler's clock by that many ms (may
 * be negative) to play an instance whose clock is off. Never set them in production.
 */
export function schedulerClock(config: Pick<Config, 'testClockSkewMs'>): () => Date {
  const skew = config.testClockSkewMs;
  return skew ? () => new Date(Date.now() + skew) : () => new Date();
}

function testJobs(config: Pick<Config, 'testTickJob'>): Job[] {
  if (!config.testTickJob) return [];
  return [{
    name: 'test.tick',
    schedule: '* * * * * *',
    run: async (_db, _now, tick) => { console.log(`[jobs] test.tick ran for ${tick?.scheduledAt.toISOString()} attempt ${tick?.attempt}`); },
  }];
}
