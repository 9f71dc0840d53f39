// Every scheduled job of the product, in one list. Features add theirs here.
import sql from 'sql-template-tag';
import type { AppDeps } from '../types.ts';
import type { Job } from './index.ts';
import { sweepThrottle } from '../auth/throttle.ts';
import { martRefreshJobs } from '../reports/jobs.ts';
import { reconcilePending } from '../billing/store.ts';

export function scheduledJobs(deps: Pick<AppDeps, 'catalog' | 'log' | 'config' | 'gateway'>): Job[] {
  return [
    {
      name: 'sessions.sweep',
      schedule: '*/15 * * * *',
      run: (db) => db.query(`DELETE FROM sessions WHERE expires_at < now()`),
    },
    // sign-in throttling (issue 5): attempts older than a day, expired known-device cookies
    { name: 'login-throttle.sweep', schedule: '7 * * * *', run: (db, now) => sweepThrottle(db, now) },
    // report marts (issue 6): one job per distinct @refresh schedule, refreshing due marts in dependency order
    // live billing (issue 15): payments whose gateway call timed out, settled once the gateway tells their outcome
    { name: 'billing.reconcile-pending', schedule: '* * * * *', run: (db, now) => reconcilePending(db, deps.gateway, now, { olderThanMs: 60_000 }) },
    // a form key matters while someone may resubmit that form: keep the outcomes for a month
    { name: 'billing.requests-sweep', schedule: '17 3 * * *', run: (db, now) => db.query(sql`DELETE FROM billing_requests WHERE created_at < ${new Date(now.getTime() - 30 * 86_400_000)}`) },
    ...martRefreshJobs(deps.catalog, deps.log, deps.config.martWorkMem),
  ];
}
