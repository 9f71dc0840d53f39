// Every scheduled job of the product, in one list. Features add theirs here.
import type { Deps } from '../types.ts';
import type { Job } from './index.ts';
import { getCatalog } from '../reports/engine.ts';
import { martRefreshJobs } from '../reports/jobs.ts';

export function scheduledJobs(deps: Deps): Job[] {
  return [
    {
      name: 'sessions.sweep',
      schedule: '*/15 * * * *',
      run: (db) => db.query(`DELETE FROM sessions WHERE expires_at < now()`),
    },
    // report marts (issue 6): one job per distinct @refresh schedule, refreshing due marts in dependency order
    ...martRefreshJobs(getCatalog(), deps.log),
  ];
}
