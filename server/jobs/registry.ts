// Every scheduled job of the product, in one list. Features add theirs here.
import type { AppDeps } from '../types.ts';
import type { Job } from './index.ts';
import { sweepThrottle } from '../auth/throttle.ts';
import { martRefreshJobs } from '../reports/jobs.ts';
import { reconcilePending } from '../billing/store.ts';
import sql from 'sql-template-tag';
import { billingJobs, loadSimulationModel, monthStart, outageAware, withSimulatedPayments } from '../billing/jobs.ts';

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
    ...martRefreshJobs(deps.catalog, deps.log, deps.config.martWorkMem),
  ];
}
