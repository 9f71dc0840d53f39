// The only place that listens: opens the database (embedded or DATABASE_URL), migrates, prepares first-start data,
// serves, runs scheduled jobs, and shuts down in order on SIGTERM/SIGINT.
import { listen, shutdownOnSignals } from './serve.ts';
import { openDatabase } from './db/connect.ts';
import { createDb, redactUrl } from './db/index.ts';
import { migrate } from './db/migrate.ts';
import { createApp } from './app.ts';
import { ensureFirstAdmin, ensureDemoData } from './first-start.ts';
import { startJobs } from './jobs/index.ts';
import { scheduledJobs, jobTestHooks } from './jobs/registry.ts';
import { ensureBuilt } from '../views/build.ts';
import { loadDashboards } from './dashboards/catalog.ts';
import { useDashboards } from './dashboards/index.ts';
import { loadCatalog, useCatalog, ensureMarts, checkReportSql, refreshDue } from './reports/engine.ts';

const started = Date.now();
const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be an integer 0-65535, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}

const log = (l: string) => console.log(l);
let stopDatabase = async () => {};
// A signal while starting (e.g. during the demo-data load) still stops the embedded database; nothing is half-written
// because every load step is one transaction.
const stopWhileStarting = (signal: NodeJS.Signals) => {
  log(`${signal} while starting: stopping`);
  void stopDatabase().finally(() => process.exit(130));
};
process.on('SIGTERM', stopWhileStarting);
process.on('SIGINT', stopWhileStarting);
try {
  const target = await openDatabase(process.env, log);
  stopDatabase = target.stop;
  const db = createDb(target.url, { max: Number(process.env.MARQUEE_POOL_SIZE ?? 20) });
  log(`database: ${target.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'} ${redactUrl(target.url)}`);
  const m = await migrate(db, { log });
  log(`schema at version ${m.current}`);
  // Reports and marts are validated before anything else: a broken file stops the start with file:line and why.
  const catalog = loadCatalog();
  await ensureMarts(db, catalog, { log });
  await checkReportSql(db, catalog);
  useCatalog(catalog);
  log(`reports: ${catalog.reports.size} reports, ${catalog.marts.size} marts`);
  // Dashboard files are checked against the reports too: a broken one stops the start with file and reason.
  useDashboards(loadDashboards(process.env.MARQUEE_DASHBOARDS_DIR || undefined, catalog));
  const admin = await ensureFirstAdmin(db);
  await ensureDemoData(db);

  // Pages link the hashed browser bundles: (re)build them when missing or older than views/ (fast when current).
  await ensureBuilt(log);
  const deps = { db, secureCookies: process.env.MARQUEE_SECURE_COOKIES === '1', log: (l: string) => console.error(l) };
  const app = createApp(deps);
  const jobs = startJobs(db, scheduledJobs(deps), log, jobTestHooks().now);

  const { server, url } = await listen(app.fetch, port, host);
  // Marts never refreshed (a new database, a changed definition) or due are filled in the background; their
  // reports answer 503 "not ready" until then.
  const startupRefresh = refreshDue(db, catalog, new Date(), log, 'startup')
    .then((r) => { if (r.ran && r.results.length) log(`reports: startup refresh of ${r.results.length} marts done (${r.results.filter((x) => !x.ok).length} failed)`); })
    .catch((e) => log(`reports: startup refresh failed: ${e.message}`));
  process.off('SIGTERM', stopWhileStarting);
  process.off('SIGINT', stopWhileStarting);
  shutdownOnSignals(server, [() => jobs.stop(), () => startupRefresh, () => db.close(), stopDatabase], log);
  log(`\nMarquee is ready at ${url}  (started in ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  if (admin.generatedPassword) {
    log(`Sign in as ${admin.adminEmail} with password ${admin.generatedPassword}  (shown once; change it under /account)`);
  } else if (admin.created) {
    log(`Sign in as ${admin.adminEmail} with the password in MARQUEE_ADMIN_PASSWORD`);
  } else {
    log(`Sign in as ${admin.adminEmail} (or another admin) with your password; "npm run users -- reset-password" if lost`);
  }
} catch (e: any) {
  console.error(`marquee: could not start: ${e.message}`);
  await stopDatabase().catch(() => {});
  process.exit(1);
}
