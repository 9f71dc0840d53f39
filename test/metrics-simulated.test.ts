// MRR movements reconcile for every month on the simulator's `--scale small` history (2,000 customers, 12 months),
// and the mart's MRR at every month start equals a direct, deliberately naive computation from subscription_events
// (latest event per subscription at or before the instant, per the billing contract) — an independent oracle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, type Catalog } from '../server/reports/engine.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';

const t = useDatabase(test);
let catalog: Catalog;
const END = '2026-10-15';
let months: string[] = [];

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  const p = parseArgs(['--scale', 'small', '--seed', '11', '--end', END, '--quiet']);
  await runSimulation(t.db, p);
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const r = await refreshMarts(t.db, catalog);
  const failed = r.results.filter((x) => !x.ok);
  if (failed.length) throw new Error(`mart refresh failed: ${JSON.stringify(failed)}`);
  const span = await t.db.one(`SELECT to_char(min(at) AT TIME ZONE 'UTC', 'YYYY-MM') AS first FROM subscription_events`);
  const first = span!.first as string;
  for (let d = new Date(`${first}-01T00:00:00Z`); d <= new Date(); d.setUTCMonth(d.getUTCMonth() + 1)) months.push(d.toISOString().slice(0, 7));
});

async function run(id: string, params: Record<string, string | string[]> = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) q.append(k, x);
  return (await runReport(t.db, catalog, id, q, { role: 'analyst', now: new Date(), cache: false, })).rows as Record<string, any>[];
}
const cents = (d: number) => Math.round(d * 100);

test('MRR movements reconcile start to end in every month of the simulated history', async () => {
  const period = { from: months[0], to: months.at(-1)! };
  const rows = await run('mrr_movements', period);
  assert.is(rows.length, months.length);
  assert.ok(rows.length >= 13, `a 12-month window spans at least 13 calendar months (got ${rows.length})`);
  let moved = 0;
  for (const [i, r] of rows.entries()) {
    const sum = cents(r.start_mrr) + cents(r.new_mrr) + cents(r.expansion_mrr) + cents(r.reactivation_mrr)
      - cents(r.contraction_mrr) - cents(r.churned_mrr);
    assert.is(sum, cents(r.end_mrr), `${r.month}: start + movements = end`);
    assert.is(r.reconciliation_gap, 0, r.month);
    if (i > 0) assert.is(r.start_mrr, rows[i - 1].end_mrr, `${r.month} starts where the month before ended`);
    moved += cents(r.churned_mrr) + cents(r.reactivation_mrr) + cents(r.expansion_mrr) + cents(r.contraction_mrr);
  }
  assert.ok(moved > 0, 'the simulated history has churn, reactivation and plan changes');
  assert.ok(rows.some((r) => r.reactivation_mrr > 0), 'returning customers show up as reactivation');
  // each plan reconciles on its own and the plans add up to the total
  const byPlan = await Promise.all(['standard_with_ads', 'standard', 'premium'].map((plan) => run('mrr_movements', { ...period, plan })));
  for (const [i, r] of rows.entries()) {
    for (const k of ['start_mrr', 'new_mrr', 'expansion_mrr', 'reactivation_mrr', 'contraction_mrr', 'churned_mrr', 'end_mrr']) {
      assert.is(byPlan.reduce((s, p) => s + cents(p[i][k]), 0), cents(r[k]), `${r.month} ${k}: plans add up`);
    }
    for (const p of byPlan) assert.is(p[i].reconciliation_gap, 0);
  }
});

test('MRR at every month start equals the contract computed directly from subscription_events', async () => {
  const rows = await run('mrr_movements', { from: months[0], to: months.at(-1)! });
  for (const r of rows) {
    const direct = await t.db.one(`
      SELECT coalesce(sum(mrr_cents), 0) AS mrr, count(DISTINCT user_id) FILTER (WHERE mrr_cents > 0) AS customers
      FROM (SELECT DISTINCT ON (subscription_id) subscription_id, user_id, mrr_cents FROM subscription_events
            WHERE at <= $1::timestamptz ORDER BY subscription_id, at DESC, id DESC) latest`, [`${r.month}T00:00:00Z`]);
    assert.is(cents(r.start_mrr), Math.round(direct!.mrr), `MRR at ${r.month}`);
  }
  const subs = await run('customer_churn', { from: months[0], to: months.at(-1)! });
  for (const r of subs) {
    const direct = await t.db.one(`
      SELECT count(DISTINCT user_id) AS n FROM (SELECT DISTINCT ON (subscription_id) user_id, mrr_cents FROM subscription_events
        WHERE at <= $1::timestamptz ORDER BY subscription_id, at DESC, id DESC) latest WHERE mrr_cents > 0`, [`${r.month}T00:00:00Z`]);
    assert.is(r.customers_at_start, direct!.n, `customers at ${r.month}`);
  }
});

test('churn splits add up and the payment rates are in the simulated range', async () => {
  const period = { from: months[2], to: months.at(-3)! }; // full months inside the window
  for (const r of await run('customer_churn', period)) {
    assert.is(r.voluntary_churned + r.involuntary_churned, r.churned, r.month);
    assert.ok(r.churn_rate > 0 && r.churn_rate < 0.25, `${r.month} churn ${r.churn_rate}`);
  }
  const pay = await run('payment_failure_recovery', period);
  const first = pay.reduce((s, r) => s + r.first_attempts, 0), failed = pay.reduce((s, r) => s + r.first_attempt_failures, 0);
  const recovered = pay.reduce((s, r) => s + r.recovered, 0);
  // simulator defaults: 12.5 % first-attempt failures, 55 % recovered (wide bounds: 2,000 customers)
  assert.ok(failed / first > 0.09 && failed / first < 0.16, `failure rate ${failed / first}`);
  assert.ok(recovered / failed > 0.4 && recovered / failed < 0.7, `recovery rate ${recovered / failed}`);
  // cohorts: month 0 is the whole cohort by construction; customers who signed up before the history have no cohort
  const cohorts = await run('cohort_customer_retention', { from: months[0], to: months.at(-1)! });
  assert.ok(cohorts.length > 0);
  for (const r of cohorts.filter((x) => x.months_since === 0)) assert.is(r.retention, 1, `${r.cohort_month} month 0`);
  assert.ok(cohorts.every((r) => r.cohort_month >= `${months[0]}-01`), 'no pre-history cohort');
  for (const r of cohorts) assert.ok(r.retention <= 1, `${r.cohort_month} +${r.months_since}: ${r.retention}`);
  const base = cohorts.filter((r) => r.months_since === 0).reduce((s, r) => s + r.cohort_size, 0);
  const [signups] = await t.db.query(`SELECT count(*) AS n FROM users WHERE role = 'subscriber' AND created_at >= $1::date`, [`${months[0]}-01`]);
  assert.ok(base <= signups.n, 'cohort sizes never exceed the signups of the window');
  assert.ok(base > signups.n * 0.8, `most signups of the window form cohorts (${base} of ${signups.n})`);
  // every report answers on simulated data with its defaults
  for (const id of catalog.reports.keys()) await run(id);
});

test.run();
