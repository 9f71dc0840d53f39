// The churn model on the simulator's small business (2,000 customers; README "Recommendations and churn prediction
// (server/ml)"): viewing falls before a voluntary cancel in the simulated data (and not before an involuntary one);
// training is deterministic by seed; scoring fills churn_scores, which the subscribers_at_risk report shows as they
// are; the first start's one-off training; the ml CLI. The margin over the heuristic on three seeds:
// test/churn-seed-*.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { trainChurnModel, trainAndSave, scoreSubscribers, dataEndOf } from '../server/ml/churn.ts';
import { CHURN_SIM_END } from './helpers/churn-sim.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { preCancelViewingDrop } from '../server/ml/churn-check.ts';
import { parseMlArgs, UsageError } from '../server/ml/cli.ts';
import { firstStartModels } from '../server/ml/churn-jobs.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog, runReport } from '../server/reports/engine.ts';
import { execFile } from 'node:child_process';
import path from 'node:path';

const t = useDatabase(test);
const END = CHURN_SIM_END;

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  await runSimulation(t.db, parseArgs(['--scale', 'small', '--seed', '11', '--end', END, '--quiet']));
});

test('first start: with a history and no model, one model is trained and the subscribers scored, in the background; once', async () => {
  const lines: string[] = [];
  const started = firstStartModels(t.db, (l) => lines.push(l));
  assert.instance(started, Promise);
  await started; // never rejects: a failure is logged
  const models = await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM churn_models`);
  const scores = await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM churn_scores`);
  assert.is(models!.n, 1, lines.join('\n'));
  assert.ok(scores!.n > 0, lines.join('\n'));
  assert.match(lines[0], 'ml: no churn model yet: training and scoring once in the background');
  await firstStartModels(t.db, (l) => lines.push(`again: ${l}`));
  assert.is((await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM churn_models`))!.n, 1);
  assert.not.ok(lines.some((l) => l.startsWith('again:')));
});

test('viewing falls in the 30 days before a voluntary cancel, not before an involuntary one', async () => {
  const rows = await preCancelViewingDrop(t.db);
  const vol = rows.find((r) => r.end_reason === 'voluntary')!, invol = rows.find((r) => r.end_reason === 'involuntary')!;
  console.log(`  voluntary: ${vol.hours_last_30d} h in the last 30 days vs ${vol.hours_earlier_per_30d} h per 30 days before (ratio ${vol.ratio}, median ${vol.median_ratio}, ${vol.subscriptions} subscriptions); involuntary: ratio ${invol.ratio} (${invol.subscriptions})`);
  assert.ok(vol.subscriptions >= 100 && invol.subscriptions >= 50, 'enough cancels to measure');
  assert.ok(vol.ratio < 0.7, `voluntary ratio ${vol.ratio}`);
  assert.ok(invol.ratio > 0.85 && invol.ratio < 1.15, `involuntary ratio ${invol.ratio}`);
});

test('training is deterministic by seed; the sample changes with it', async () => {
  const end = await dataEndOf(t.db);
  const a = await trainChurnModel(t.db, { seed: 7, dataEnd: end }), b = await trainChurnModel(t.db, { seed: 7, dataEnd: end });
  const c = await trainChurnModel(t.db, { seed: 8, dataEnd: end });
  assert.equal(a.weights, b.weights);
  assert.is(a.intercept, b.intercept);
  assert.equal({ ...a.metrics, train_ms: 0 }, { ...b.metrics, train_ms: 0 });
  assert.not.equal(a.weights, c.weights);
});

test('scoring writes every current subscriber once; the at-risk report shows the scores table as it is', async () => {
  const m = await trainAndSave(t.db, { seed: 42 });
  const now = new Date(`${END}T00:00:00Z`);
  const s = await scoreSubscribers(t.db, { now });
  assert.ok(s && s.modelId === m.id);
  const live = await t.db.one<{ n: number }>(`SELECT count(DISTINCT user_id)::int AS n FROM subscriptions
    WHERE status IN ('active', 'past_due') AND created_at <= $1`, [now]);
  assert.is(s!.scored, live!.n);
  const table = await t.db.query(`SELECT cs.user_id, cs.risk, cs.mrr_cents, cs.reasons, cs.plan_code FROM churn_scores cs ORDER BY cs.risk * cs.mrr_cents DESC, cs.user_id`);
  assert.is(table.length, s!.scored);
  assert.ok(table.every((r) => r.risk > 0 && r.risk < 1 && r.reasons.length <= 3));
  assert.ok(table.slice(0, 20).every((r) => r.reasons.length > 0), 'the riskiest subscribers have reasons');
  const catalog = loadCatalog();
  const report = await runReport(t.db, catalog, 'subscribers_at_risk', new URLSearchParams({ top: '10000' }), { role: 'manager', now, cache: false });
  assert.is(report.rows.length, table.length);
  report.rows.forEach((r, i) => {
    const x = table[i];
    assert.is(r.subscriber, `/admin/subscribers/${x.user_id}`);
    assert.is(r.plan_code, x.plan_code);
    assert.ok(Math.abs(r.risk - x.risk) <= 0.00005 + 1e-12, `risk of ${x.user_id}`);
    assert.is(r.reasons, x.reasons.join('; '));
    assert.is(r.mrr, Math.round(x.mrr_cents) / 100);
    assert.ok(Math.abs(r.mrr_at_risk - (x.risk * x.mrr_cents) / 100) <= 0.005 + 1e-9, `MRR at risk of ${x.user_id}`);
  });
  const total = table.reduce((sum, x) => sum + (x.risk * x.mrr_cents) / 100, 0);
  const reportTotal = report.rows.reduce((sum, r) => sum + r.mrr_at_risk, 0);
  assert.ok(Math.abs(total - reportTotal) < 0.005 * table.length, `total MRR at risk ${reportTotal} vs ${total}`);
  // a plan filter keeps that plan's rows
  const premium = await runReport(t.db, catalog, 'subscribers_at_risk', new URLSearchParams({ plan: 'premium', top: '10000' }), { role: 'manager', now, cache: false });
  assert.is(premium.rows.length, table.filter((x) => x.plan_code === 'premium').length);
  // the model page's reports read the same model
  const metrics = await runReport(t.db, catalog, 'churn_model_metrics', new URLSearchParams(), { role: 'manager', now, cache: false });
  assert.is(metrics.rows.find((r) => r.scorer === 'model' && r.metric === 'AUC')!.value, m.metrics.auc);
  const weights = await runReport(t.db, catalog, 'churn_model_weights', new URLSearchParams(), { role: 'analyst', now, cache: false });
  assert.is(weights.rows.length, m.features.length);
});

test('the model page is reachable from /reports for staff; a subscriber gets neither', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  const manager = await sessionCookie(t.db, (await createUser(t.db, { role: 'manager' })).id);
  const page = await (await authedRequest(app, manager, '/reports')).text();
  assert.match(page, '<a href="/dashboards/churn_model"><b>Churn model</b></a>');
  assert.match(page, 'href="/reports/subscribers_at_risk"');
  const board = await authedRequest(app, manager, '/dashboards/churn_model');
  assert.is(board.status, 200);
  const html = await board.text();
  for (const id of ['churn_model_metrics', 'churn_model_calibration', 'churn_model_weights', 'churn_model_history', 'subscribers_at_risk']) {
    assert.match(html, `report="${id}"`);
    assert.is((await authedRequest(app, manager, `/api/reports/${id}`)).status, 200, id);
  }
  const subscriber = await sessionCookie(t.db, (await createUser(t.db, { role: 'subscriber' })).id);
  assert.is((await authedRequest(app, subscriber, '/dashboards/churn_model')).status, 403);
  assert.is((await authedRequest(app, subscriber, '/api/reports/subscribers_at_risk')).status, 403);
});

test('ml CLI arguments: commands, --seed, --json; a bad one is named', () => {
  assert.equal(parseMlArgs(['train', '--seed', '7']), { command: 'train', seed: 7, json: false });
  assert.equal(parseMlArgs(['evaluate', '--json']), { command: 'evaluate', seed: 42, json: true });
  for (const [argv, message] of [[['fit'], /unknown command "fit"/], [[], /no command/], [['train', '--seed', 'x'], /--seed must be an integer/],
    [['score', '--seed', '-1'], /--seed/], [['score', '--json'], /--json goes with evaluate/], [['train', '--bogus'], /bogus/]] as const) {
    assert.throws(() => parseMlArgs([...argv]), (e: Error) => e instanceof UsageError && message.test(e.message));
  }
});

test('npm run ml -- score (a real process on DATABASE_URL) rescores with the latest model; bad arguments exit 2', async () => {
  const root = path.resolve(import.meta.dirname, '..');
  const run = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'server/ml/cli.ts', ...args], { cwd: root, env: { ...process.env, DATABASE_URL: t.url } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
  const latest = (await t.db.one<{ id: number }>(`SELECT max(id) AS id FROM churn_models`))!.id;
  const ok = await run(['score']);
  assert.is(ok.code, 0, ok.stderr);
  const n = (await t.db.one<{ n: number; models: number[] }>(`SELECT count(*)::int AS n, array_agg(DISTINCT model_id)::int[] AS models FROM churn_scores`))!;
  assert.match(ok.stdout, `churn scores: ${n.n} subscribers scored with model ${latest}`);
  assert.equal(n.models, [latest]);
  const bad = await run(['train', '--seed', 'abc']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, '--seed must be an integer 0-2147483647, got "abc"');
});

test.run();
