// Every scheduled job of the product, in one list. Features add theirs here.
import sql from 'sql-template-tag';
import type { AppDeps } from '../types.ts';
import type { Config } from '../config.ts';
import type { Job } from './index.ts';
import { sweepThrottle } from '../auth/throttle.ts';
import { martRefreshJobs } from '../reports/jobs.ts';
import { reconcilePending } from '../billing/store.ts';
import { digestJob } from '../sharing/digests.ts';
import { runMlTask } from '../ml/worker.ts';
import { churnJobs } from '../ml/churn-jobs.ts';
import { ensureAhead } from '../db/partitions.ts';
import { billingJobs, loadSimulationModel, monthStart, outageAware, withSimulatedPayments } from '../billing/jobs.ts';

export function scheduledJobs(deps: Pick<AppDeps, 'catalog' | 'log' | 'config' | 'gateway'> & Partial<Pick<AppDeps, 'dashboards'>>): Job[] {
  return [
    {
      name: 'sessions.sweep',
      schedule: '*/15 * * * *',
      run: (db) => db.query(`DELETE FROM sessions WHERE expires_at < now()`),
    },
    // sign-in throttling (README "Accounts, roles and sessions"): attempts older than a day, expired known-device cookies
    { name: 'login-throttle.sweep', schedule: '7 * * * *', run: (db, now) => sweepThrottle(db, now) },
    // live billing (README "Live billing"): payments whose gateway call timed out, settled once the gateway tells their outcome
    // (simulated customers' payments answered by their model; an error answer stays pending: the gateway's trouble)
    // (a payment left pending in a now-closed month, e.g. by a run killed at the month change, moves history_epoch)
    {
      name: 'billing.reconcile-pending', schedule: '* * * * *', run: async (db, now) => {
        const closed = await db.one(sql`SELECT 1 FROM payments WHERE status = 'pending' AND created_at < ${monthStart(now)} LIMIT 1`);
        const r = await reconcilePending(db, outageAware(withSimulatedPayments(db, deps.gateway, () => loadSimulationModel(db))), now, { olderThanMs: 60_000 });
        if (closed && r.settled) await db.query(sql`UPDATE history_epoch SET epoch = epoch + 1, changed_at = now(), reason = 'billing: pending payments of a closed month settled'`);
        return r;
      },
    },
    // renewals (with cancels and downgrades at period end), dunning retries, expiry of incomplete subscriptions
    ...billingJobs(deps.gateway, deps.log),
    // a form key matters while someone may resubmit that form: keep the outcomes for a month
    { name: 'billing.requests-sweep', schedule: '17 3 * * *', run: (db, now) => db.query(sql`DELETE FROM billing_requests WHERE created_at < ${new Date(now.getTime() - 30 * 86_400_000)}`) },
    // report marts (README "Report engine"): one job per distinct @refresh schedule, refreshing due marts in dependency order
    ...martRefreshJobs(deps.catalog, deps.log, deps.config.martWorkMem, deps.config.martParallel),
    // recommendations (README "Recommendations and churn prediction"): neighbours and cold-start popularity, nightly
    { name: 'recommendations.refresh', schedule: '23 4 * * *', run: (db, now) => runMlTask(db.url, 'recommendations', { seed: 42, now }) },
    // churn prediction (README "Recommendations and churn prediction"): a model a week, scores every day
    ...churnJobs(deps.log),
    partitionsJob,
    // the claim table of these jobs (server/jobs): a week of history is kept
    { name: 'job-runs.sweep', schedule: '41 * * * *', run: (db) => db.query(`DELETE FROM job_runs WHERE scheduled_at < now() - interval '7 days'`) },
    // scheduled digests: this period's snapshot of each subscription, mailed once (server/sharing/digests.ts)
    digestJob(deps),
    ...testJobs(deps.config),
  ];
}

/** Monthly partitions of the event tables (README "Partitions"): this month and the next three exist, parents analyzed. */
export const partitionsJob: Job = { name: 'partitions.ensure', schedule: '13 2 * * *', run: async (db, now) => ({ created: await ensureAhead(db, now) }) };

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
