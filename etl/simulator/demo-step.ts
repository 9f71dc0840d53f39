// First-start demo step: the default simulation (50,000 customers, 12 months ending today, seed 42) over the catalog
// the titles step just loaded. Present as soon as any simulated customer exists, so a second start skips it.
import type { Db } from '../../server/db/index.ts';
import { runParams } from './params.ts';
import { runSimulation } from './run.ts';

// Registered in server/demo-data.ts, which checks it against DemoStep (this file does not import it back).
export const simulationDemoStep = {
  name: 'business simulation',
  async present(db: Db): Promise<boolean> {
    return !!(await db.one(`SELECT 1 FROM users WHERE simulated LIMIT 1`));
  },
  async load(db: Db, log: (line: string) => void): Promise<void> {
    const params = runParams({ scale: 'default', quiet: true });
    log(`simulating ${params.users.toLocaleString('en-US')} customers over ${params.months} months ending ${params.end} (seed ${params.seed})`);
    let lastDecile = 0;
    const r = await runSimulation(db, params, {
      log,
      onProgress: (p) => {
        const decile = Math.floor((p.users / p.totalUsers) * 10);
        if (decile > lastDecile && decile < 10) {
          lastDecile = decile;
          log(`  ${Math.round((p.users / p.totalUsers) * 100)} %: ${p.users.toLocaleString('en-US')} customers, ${p.rows.toLocaleString('en-US')} rows`);
        }
      },
    });
    log(`  wrote ${r.rows.toLocaleString('en-US')} rows (${Object.entries(r.rowCounts).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}); ` +
      `validation summary: npm run simulate -- --summary`);
  },
};
