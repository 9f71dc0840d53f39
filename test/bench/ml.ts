// npm run bench -- ml [--seed=42] [--runs=2]: the churn model on the demo-size business (the default simulator preset,
// 50,000 customers over 12 months; generated once into an embedded PostgreSQL kept under MARQUEE_BENCH_DIR or
// $TMPDIR/marquee-bench-ml, or in DATABASE_URL's server): training (feature SQL at five cutoffs, fitting, evaluation)
// and scoring every current subscriber, each beside a baseline measured in the same run — the same feature SQL alone
// (what any model must read) — so a slower machine moves both. Targets (README): train ≤ 60 s, score ≤ 10 s.
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createDb, withConnection, withDatabase, ident } from '../../server/db/index.ts';
import { migrate } from '../../server/db/migrate.ts';
import { titlesDemoStep } from '../../etl/titles/demo-step.ts';
import { trainAndSave, scoreSubscribers, loadFeatures, loadLabeled, cutoffsFor, dataEndOf } from '../../server/ml/churn.ts';
import { fmt, keptBenchServer, record, time } from './lib.ts';

const root = path.resolve(import.meta.dirname, '../..');
const flag = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const seed = Number(flag('seed', '42'));
const runs = Number(flag('runs', '2'));
const log = (l: string) => console.log(l);

const { serverUrl, stop } = await keptBenchServer('marquee-bench-ml', log);
const dbName = 'mqbench_ml';
await withConnection(serverUrl, async (c) => {
  if (!(await c.one('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]))) await c.query(`CREATE DATABASE ${ident(dbName)}`);
});
const url = withDatabase(serverUrl, dbName);
const db = createDb(url, { max: 6, statementTimeoutMs: 0 });
try {
  await migrate(db);
  if (!(await titlesDemoStep.present(db))) await titlesDemoStep.load(db, log);
  if (!(await db.one(`SELECT 1 FROM users WHERE simulated LIMIT 1`))) {
    log('no simulated business yet: npm run simulate (default preset: 50,000 customers; once, later runs reuse it)');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', '--seed', '42', '--quiet'],
      { cwd: root, stdio: 'inherit', env: { ...process.env, DATABASE_URL: url } });
    if (r.status !== 0) throw new Error(`simulate failed with code ${r.status}`);
  }
  const counts = await db.one(`SELECT (SELECT count(*) FROM users WHERE simulated) AS customers, (SELECT count(*) FROM subscription_events) AS events,
    (SELECT count(*) FROM payments) AS payments, (SELECT count(*) FROM watch_events) AS watch_events`);
  log(`dataset: ${fmt(counts!.customers, 0)} customers, ${fmt(counts!.events, 0)} subscription events, ${fmt(counts!.payments, 0)} payments, ${fmt(counts!.watch_events, 0)} watch events`);
  const end = await dataEndOf(db);
  const { test, train } = cutoffsFor(end);
  const rows: string[][] = [];
  for (let run = 1; run <= runs; run++) {
    const base = await time(() => Promise.all([...train.map((c) => loadLabeled(db, c, test)), loadLabeled(db, test, end)]));
    const trained = await time(() => trainAndSave(db, { seed, dataEnd: end }));
    const baseScore = await time(() => loadFeatures(db, new Date()));
    const scored = await time(() => scoreSubscribers(db));
    const m = trained.result.metrics;
    rows.push([`${run}`, fmt(base.ms / 1000, 2), fmt(trained.ms / 1000, 2), fmt(trained.ms / base.ms, 2),
      fmt(baseScore.ms / 1000, 2), fmt(scored.ms / 1000, 2), fmt(scored.ms / baseScore.ms, 2), `${scored.result?.scored}`,
      `${m.auc} / ${m.baseline.auc}`]);
    const of = runs > 1 ? ` (run ${run})` : '';
    record(`churn model: train${of}`, trained.ms / 1000, 's', { baseline: 'feature SQL, 5 cutoffs', baselineValue: base.ms / 1000, max: 60 });
    record(`churn model: score every subscriber${of}`, scored.ms / 1000, 's', { baseline: 'feature SQL now', baselineValue: baseScore.ms / 1000, max: 10 });
    record(`churn model: AUC${of}`, m.auc, 'AUC', { baseline: 'heuristic AUC', baselineValue: m.baseline.auc });
  }
  log('\nrun | baseline: feature SQL, 5 cutoffs (s) | train (s) | ratio | baseline: feature SQL now (s) | score (s) | ratio | scored | AUC model / heuristic');
  for (const r of rows) log(r.join(' | '));
  log(`targets: train ≤ 60 s, score ≤ 10 s (load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')})`);
} finally {
  await db.close();
  await stop();
}
