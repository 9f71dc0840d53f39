// The only place that listens: reads the configuration (server/config.ts), opens the database (embedded or
// DATABASE_URL), migrates, prepares first-start data, serves, runs scheduled jobs, and shuts down in order on
// SIGTERM/SIGINT.
import { listen, shutdownOnSignals } from './serve.ts';
import { configOrExit } from './config.ts';
import { openDatabase } from './db/connect.ts';
import { createDb, redactUrl } from './db/index.ts';
import { withReplica } from './db/replica.ts';
import { migrate } from './db/migrate.ts';
import { appDeps, createApp } from './app.ts';
import { PublicOrigins, listenOrigins } from './auth/origins.ts';
import { ensureFirstAdmin, ensureDemoData, adminPasswordProblem } from './first-start.ts';
import { startJobs } from './jobs/index.ts';
import { firstStartModels } from './ml/churn-jobs.ts';
import { scheduledJobs, schedulerClock } from './jobs/registry.ts';
import { ensureBuilt } from '../views/build.ts';
import { VisitRecorder } from './visits.ts';
import { searchIndexOf } from './browse/search-index.ts';
import { loadDashboards } from './dashboards/catalog.ts';
import { startTraffic, formatSummary } from '../etl/traffic/driver.ts';
import { loadCatalog, ensureMarts, checkReportSql, refreshDue, DEFAULT_REPORTS_DIR } from './reports/engine.ts';

const started = Date.now();
// Every variable is read and checked here, once: a bad one stops the start with its name and value (exit 2).
const config = configOrExit(process.env, 'marquee');
const weakAdminPassword = adminPasswordProblem(config);
if (weakAdminPassword) { console.error(`marquee: ${weakAdminPassword}`); process.exit(2); }
// MARQUEE_PUBLIC_URL, else the listen address once the port is known.
const origins = new PublicOrigins(config.publicUrls ?? []);

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
  const target = await openDatabase(config, log);
  stopDatabase = target.stop;
  const db = createDb(target.url, { max: config.poolSize });
  log(`database: ${target.embedded ? 'embedded PostgreSQL' : 'DATABASE_URL'} ${redactUrl(target.url)}`);
  const m = await migrate(db, { log });
  log(`schema at version ${m.current}`);
  // Reports and marts are validated before anything else: a broken file stops the start with file:line and why.
  const catalog = loadCatalog(config.reportsDir ?? DEFAULT_REPORTS_DIR);
  await ensureMarts(db, catalog, { log });
  await checkReportSql(db, catalog);
  log(`reports: ${catalog.reports.size} reports, ${catalog.marts.size} marts`);
  // Dashboard files are checked against the reports too: a broken one stops the start with file and reason.
  const dashboards = loadDashboards(config.dashboardsDir, catalog);
  const admin = await ensureFirstAdmin(db, config);
  await ensureDemoData(db, config);

  // Pages link the hashed browser bundles: (re)build them when missing or older than views/ (fast when current).
  await ensureBuilt(log);
  // Page views are buffered in memory and written in batches; the shutdown steps flush them before the pool closes.
  const visits = new VisitRecorder(db, { log: (l: string) => console.error(l) });
  // DATABASE_REPLICA_URL: report runs read from the replica while it is up and close enough (README "Read replica")
  const readDb = config.databaseReplicaUrl
    ? withReplica(db, config.databaseReplicaUrl, { maxLagMs: config.replicaMaxLagMs, max: config.poolSize, log: (l: string) => console.error(l) })
    : db;
  if (config.databaseReplicaUrl) log(`read replica: ${redactUrl(config.databaseReplicaUrl)} for reports (at most ${config.replicaMaxLagMs} ms behind)`);
  const deps = appDeps({ db, readDb, config, catalog, dashboards, visits, log: (l: string) => console.error(l), publicOrigins: origins });
  const app = createApp(deps);
  const jobs = startJobs(db, scheduledJobs(deps), log, schedulerClock(config));

  // the search index is built before the first request (under a second of CPU for the real catalog), so a cold
  // process's first searches do not queue behind its build while holding connections
  await searchIndexOf(db).catch((e) => log(`browse: search index not built at start (${e.message}); the first search builds it`));
  const { server, url } = await listen(app.fetch, config.port, config.host);
  if (!config.publicUrls) origins.set(listenOrigins(config.host, (server.address() as { port: number }).port));
  log(`outgoing mail (sign-up links): ${config.outboxDir}; digests: ${config.smtpUrl ? `SMTP ${redactUrl(config.smtpUrl)}` : 'the same outbox'}`);
  log(`answering as ${origins.list.join(', ')}${config.publicUrls ? ' (MARQUEE_PUBLIC_URL)' : ' (the listen address; set MARQUEE_PUBLIC_URL for other names)'}`);
  // Marts never refreshed (a new database, a changed definition) or due are filled in the background; their
  // reports answer 503 "not ready" until then.
  const startupRefresh = refreshDue(db, catalog, new Date(), log, 'startup', config.martWorkMem, config.martParallel)
    .then((r) => { if (r.ran && r.results.length) log(`reports: startup refresh of ${r.results.length} marts done (${r.results.filter((x) => !x.ok).length} failed)`); })
    .catch((e) => log(`reports: startup refresh failed: ${e.message}`));
  // MARQUEE_DEMO_TRAFFIC=1: a few simulated people a minute use the site over real HTTP (README, "Live traffic"),
  // addressed by the first public origin (the listen address by default); stopped first on shutdown.
  const traffic = config.demoTraffic ? startTraffic({
    base: origins.list[0] ?? url, users: 200, rate: 4 / 60, durationMs: Infinity, maxRequests: Infinity,
    seed: Date.now() % 2_147_483_647, outboxDir: config.outboxDir, requestTimeoutMs: 30_000, signupShare: 0.08,
    log: (l) => console.error(l),
  }) : undefined;
  if (traffic) log(`demo traffic: about 4 visits a minute by simulated people against ${origins.list[0] ?? url} (MARQUEE_DEMO_TRAFFIC=1)`);
  const stopTraffic = async () => { if (traffic) log(formatSummary(await traffic.stop()).replace(/^traffic:/, 'demo traffic:')); };
  // No churn model yet (a first start): train and score once in the background, after the marts' first refresh
  // started; the ready line does not wait for it (README "Recommendations and churn prediction").
  firstStartModels(db, log);
  process.off('SIGTERM', stopWhileStarting);
  process.off('SIGINT', stopWhileStarting);
  shutdownOnSignals(server, [stopTraffic, () => visits.close(), () => jobs.stop(), () => startupRefresh, () => readDb === db ? Promise.resolve() : readDb.close(), () => db.close(), stopDatabase], log);
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
