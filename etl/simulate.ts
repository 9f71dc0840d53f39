// npm run simulate -- [--scale small|default|large] [--users N] [--months M] [--seed S] [--end YYYY-MM-DD] [--reset] ...
// Generates a deterministic business history over the loaded catalog (see etl/simulator/ and server/billing/README.md),
// then prints the validation summary measured from the database. Exit codes: 0 ok, 2 bad flags, 1 anything else.
import { configOrExit } from '../server/config.ts';
import { argsOrExit } from '../server/cli.ts';
import { openDatabase } from '../server/db/connect.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { parseArgs, ParamError, USAGE } from './simulator/params.ts';
import { runSimulation, SimulationError, type Progress } from './simulator/run.ts';
import { validationSummary, formatSummary } from './simulator/validate.ts';

const params = argsOrExit('simulate', USAGE, () => parseArgs(process.argv.slice(2)), (e) => e instanceof ParamError);

const log = (l: string) => console.error(l);
const tty = process.stderr.isTTY && !params.quiet;

function progressLine(p: Progress): string {
  const share = p.users / p.totalUsers;
  const width = 30, filled = Math.round(share * width);
  const rate = p.elapsedMs > 0 ? Math.round(p.rows / (p.elapsedMs / 1000)) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)} %  ` +
    `${p.users.toLocaleString('en-US')}/${p.totalUsers.toLocaleString('en-US')} customers  ${p.rows.toLocaleString('en-US')} rows  ${rate.toLocaleString('en-US')} rows/s`;
}

async function generate(db: Db) {
  log(`simulating ${params.users.toLocaleString('en-US')} customers over ${params.months} months ending ${params.end} ` +
    `(seed ${params.seed}, profile ${params.profile})${params.reset ? ', replacing the simulated history' : ''}`);
  let lastLogged = -1;
  const result = await runSimulation(db, params, {
    log,
    onProgress: (p) => {
      if (tty) process.stderr.write(`\r${progressLine(p)}\x1b[K`);
      else if (!params.quiet) {
        const decile = Math.floor((p.users / p.totalUsers) * 10);
        if (decile > lastLogged) { lastLogged = decile; log(progressLine(p)); }
      }
    },
  });
  committed = true;
  if (tty) process.stderr.write('\n');
  const secs = result.writeMs / 1000;
  console.log(`wrote ${result.rows.toLocaleString('en-US')} rows in ${secs.toFixed(1)} s (${Math.round(result.rows / secs).toLocaleString('en-US')} rows/s), ` +
    `${result.rebuiltIndexes ? 'indexes rebuilt and ' : ''}checks done after ${(result.finishMs / 1000).toFixed(1)} s more, ${(result.generateMs / 1000).toFixed(1)} s in all: ` +
    Object.entries(result.rowCounts).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', '));
  console.log(`window ${result.windowStart.slice(0, 10)} .. ${result.windowEnd.slice(0, 10)}; ${result.baseCustomers.toLocaleString('en-US')} customers subscribed before it opened; ` +
    `foreign keys ${result.bulkLoad ? 'verified in bulk' : 'checked row by row'}; run ${result.runId}`);
  console.log(formatSummary(await validationSummary(db, result.runId)));
}

let stop = async () => {};
let code = 0;
let committed = false;
try {
  const target = await openDatabase(configOrExit(process.env, 'simulate'), (l) => { if (!params.quiet) log(l); }, { shareRunning: true });
  stop = target.stop;
  const db = createDb(target.url, { max: 4, statementTimeoutMs: 0, idleInTxTimeoutMs: 600_000 });
  try {
    await migrate(db);
    if (params.summary) {
      committed = true;
      console.log(formatSummary(await validationSummary(db)));
    } else {
      await generate(db);
    }
  } finally {
    await db.close();
  }
} catch (e: any) {
  if (e instanceof SimulationError) console.error(`simulate: ${e.message}`);
  else if (committed) console.error(`simulate: the history was written, but the summary failed: ${e.message}`);
  else console.error(`simulate: failed, nothing was written: ${e.message}`);
  code = 1;
}
await stop().catch(() => {});
process.exit(code);
