// Scheduled mart refreshes: one node-cron job per distinct @refresh schedule. Each run refreshes every mart that is
// due (its schedule fired since its last attempt) in dependency order, so a second instance firing at the same
// minute, or a run that was skipped while another held the lock, does the right thing.
import type { Job } from '../jobs/index.ts';
import type { Catalog } from './catalog.ts';
import { refreshDue } from './marts.ts';

export function martRefreshJobs(catalog: Catalog, log: (l: string) => void = () => {}, workMem?: string, parallel?: number): Job[] {
  const schedules = [...new Set(catalog.martOrder.map((n) => catalog.marts.get(n)!.schedule))].sort();
  return schedules.map((schedule) => ({
    name: `reports.refresh ${schedule}`,
    schedule,
    run: async (db, now) => {
      const out = await refreshDue(db, catalog, now, log, 'schedule', workMem, parallel);
      if (!out.ran) log(`[reports] scheduled refresh (${schedule}) skipped: another refresh holds the lock`);
      return out;
    },
  }));
}
