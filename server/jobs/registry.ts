// Every scheduled job of the product, in one list. Features add theirs here.
import type { AppDeps } from '../types.ts';
import type { Job } from './index.ts';
import { sweepThrottle } from '../auth/throttle.ts';
import { martRefreshJobs } from '../reports/jobs.ts';
import { reconcilePending } from '../billing/store.ts';
import { billingJobs, loadSimulationModel, outageAware, withSimulatedPayments } from '../billing/jobs.ts';

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
    // (simulated customers' payments answered by their model; an error answer stays pending: the gateway's trouble)
    { name: 'billing.reconcile-pending', schedule: '* * * * *', run: (db, now) => reconcilePending(db,
      outageAware(withSimulatedPayments(db, deps.gateway, () => loadSimulationModel(db))), now, { olderThanMs: 60_000 }) },
    // renewals (with cancels and downgrades at period end), dunning retries, expiry of incomplete subscriptions
    ...billingJobs(deps.gateway, deps.log),
    ...martRefreshJobs(deps.catalog, deps.log, deps.config.martWorkMem),
  ];
}
