// Every metric of DESIGN.md on the hand-built billing story of test/fixtures/metrics/billing-scenario.ts, through the
// real report engine (ensureMarts, refreshMarts, runReport). Expected values are worked out by hand below from the
// story, in cents, and converted the way the reports present them (dollars with 2 decimals, rates with 4).
//
// MRR per customer at each month start (A std→premium, B ads, C premium→std, D std, F ads):
//            Feb 1   Mar 1   Apr 1        May 1         Jun 1 ...
//   A        1799    1799    2499         0             0
//   B         799     799    0            0             0
//   C           —    2499    1799         1799          1799
//   D        1799       0    0            1799          1799
//   F           —       —     799          799 past_due   799
//   total    4397    5097    5097         4397          4397
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, type Catalog, type Role } from '../server/reports/engine.ts';
import { loadBillingScenario } from './fixtures/metrics/billing-scenario.ts';
import { loadActivityScenario } from './fixtures/metrics/activity-scenario.ts';

const t = useDatabase(test);
let catalog: Catalog;
/**
 * The clock of every report run here: the instant the marts were built (their as_of, the refresh transaction's now()),
 * not the wall clock — so "this month" means the same month to the marts and to the reports even when a month begins
 * while the file runs.
 */
let NOW: Date;

test.before(async () => {
  const { f, users } = await loadBillingScenario(t.db);
  await loadActivityScenario(f, users);
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  // Each mart refreshes in its own transaction: if a month began between two of them, build them all again (the
  // next month is weeks away), so every mart ends its current month at the same month's now().
  for (let attempt = 0; ; attempt++) {
    const r = await refreshMarts(t.db, catalog);
    const failed = r.results.filter((x) => !x.ok);
    if (failed.length) throw new Error(`mart refresh failed: ${JSON.stringify(failed)}`);
    const asOf = await t.db.one<{ months: number; last: Date }>(`SELECT count(DISTINCT date_trunc('month', as_of, 'UTC'))::int AS months,
      max(as_of) AS last FROM report_marts`);
    NOW = asOf!.last;
    if (asOf!.months === 1 || attempt === 1) break;
  }
});

type Rows = Record<string, any>[];
async function run(id: string, params: Record<string, string | string[]> = {}): Promise<Rows> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) q.append(k, x);
  const res = await runReport(t.db, catalog, id, q, { role: 'analyst', now: NOW, cache: false });
  return res.rows;
}
const period = { from: '2025-01', to: '2025-05' };
const col = (rows: Rows, name: string) => rows.map((r) => r[name]);
const dollars = (cents: number) => Math.round(cents) / 100;
const rate = (x: number) => Math.round(x * 10_000) / 10_000;
const months = ['2025-01-01', '2025-02-01', '2025-03-01', '2025-04-01', '2025-05-01'];

test('MRR and ARR at each month end, with plan and country filters', async () => {
  const rows = await run('mrr_trend', period);
  assert.equal(col(rows, 'month'), months);
  const mrr = [4397, 5097, 5097, 4397, 4397];
  assert.equal(col(rows, 'mrr'), mrr.map(dollars));
  assert.equal(col(rows, 'arr'), mrr.map((c) => dollars(c * 12)));
  assert.equal(col(rows, 'active_customers'), [3, 3, 3, 3, 3]);
  // standard at month end: Jan A+D, Feb A, Mar C (A is premium now), Apr C+D, May C+D
  assert.equal(col(await run('mrr_trend', { ...period, plan: 'standard' }), 'mrr'), [3598, 1799, 1799, 3598, 3598].map(dollars));
  assert.equal(col(await run('mrr_trend', { ...period, plan: ['standard', 'premium'] }), 'mrr'), [3598, 4298, 4298, 3598, 3598].map(dollars));
  // GB: B until it churns in March, F from March (past_due customers still count)
  assert.equal(col(await run('mrr_trend', { ...period, country: 'GB' }), 'mrr'), [799, 799, 799, 799, 799].map(dollars));
});

test('MRR movements: new vs reactivation, expansion, contraction, churn, reconciling every month', async () => {
  const rows = await run('mrr_movements', period);
  const expect = [
    // start, new, expansion, reactivation, contraction, churn, end
    [0, 4397, 0, 0, 0, 0, 4397],          // Jan: A, B, D new
    [4397, 2499, 0, 0, 0, 1799, 5097],    // Feb: C new, D churns (voluntary, Feb 20)
    [5097, 799, 700, 0, 700, 799, 5097],  // Mar: F new, A upgrade, C downgrade, B churns (involuntary)
    [5097, 0, 0, 1799, 0, 2499, 4397],    // Apr: D returns = reactivation (not new), A churns
    [4397, 0, 0, 0, 0, 0, 4397],          // May: F recovered from past_due: no movement
  ];
  const keys = ['start_mrr', 'new', 'expansion', 'reactivation', 'contraction', 'churn', 'end_mrr'];
  assert.equal(rows.map((r) => keys.map((k) => r[k])), expect.map((e) => e.map(dollars)));
  for (const [i, r] of rows.entries()) {
    assert.is(r.reconciliation_gap, 0, `gap in ${r.month}`);
    assert.is(r.opening, 0, 'no simulated history: nothing exists before the first event');
    if (i > 0) assert.is(r.start_mrr, rows[i - 1].end_mrr, `start of ${r.month} = end of the month before`);
  }
  // under a plan filter a plan change across the filter's edge is a transfer: in March A moves standard → premium
  // (24.99 in) and C premium → standard (24.99 out); premium starts March with C and ends it with A
  const premium = await run('mrr_movements', { ...period, plan: 'premium' });
  const mar = premium.find((r) => r.month === '2025-03-01')!;
  assert.equal([mar.start_mrr, mar.expansion, mar.contraction, mar.transfer_in, mar.transfer_out, mar.end_mrr, mar.reconciliation_gap],
    [24.99, 0, 0, 24.99, 24.99, 24.99, 0]);
  for (const [i, r] of premium.entries()) if (i > 0) assert.is(r.start_mrr, premium[i - 1].end_mrr, `premium: start of ${r.month}`);
});

test('active subscribers and past_due customers', async () => {
  const rows = await run('active_subscribers', period);
  assert.equal(col(rows, 'active_subscribers'), [3, 3, 3, 3, 3]);
  assert.equal(col(rows, 'past_due_subscribers'), [0, 0, 0, 1, 0]); // F at May 1
});

test('customer churn: gross, voluntary / involuntary, net of reactivations', async () => {
  const rows = await run('customer_churn', period);
  assert.equal(col(rows, 'customers_at_start'), [0, 3, 3, 3, 3]);
  assert.equal(col(rows, 'churned'), [0, 1, 1, 1, 0]);
  assert.equal(col(rows, 'voluntary_churned'), [0, 1, 0, 1, 0]);
  assert.equal(col(rows, 'involuntary_churned'), [0, 0, 1, 0, 0]);
  assert.equal(col(rows, 'reactivated'), [0, 0, 0, 1, 0]);
  assert.equal(col(rows, 'churn_rate'), [null, rate(1 / 3), rate(1 / 3), rate(1 / 3), 0]);
  assert.equal(col(rows, 'voluntary_churn_rate'), [null, rate(1 / 3), 0, rate(1 / 3), 0]);
  assert.equal(col(rows, 'involuntary_churn_rate'), [null, 0, rate(1 / 3), 0, 0]);
  assert.equal(col(rows, 'net_churn_rate'), [null, rate(1 / 3), rate(1 / 3), 0, 0]);
  const kpi = (await run('kpi_customer_churn_rate', { month: '2025-05' }))[0];
  assert.equal([kpi.customer_churn_rate, kpi.previous, kpi.change], [0, rate(1 / 3), -rate(1 / 3)]);
});

test('gross and net MRR churn', async () => {
  const rows = await run('mrr_churn', period);
  assert.equal(col(rows, 'gross_mrr_churn_rate'), [null, rate(1799 / 4397), rate((799 + 700) / 5097), rate(2499 / 5097), 0]);
  assert.equal(col(rows, 'net_mrr_churn_rate'), [null, rate(1799 / 4397), rate((799 + 700 - 700) / 5097), rate((2499 - 1799) / 5097), 0]);
});

test('ARPA, LTV and quick ratio', async () => {
  const arpa = await run('arpa', period);
  assert.equal(col(arpa, 'arpa'), [4397 / 3, 5097 / 3, 5097 / 3, 4397 / 3, 4397 / 3].map(dollars));
  const ltv = await run('ltv', period);
  // LTV = ARPA ÷ churn rate; Feb: (5097/3 cents) ÷ (1/3) = 5097 cents; no churn (Jan, May) -> empty
  assert.equal(col(ltv, 'ltv'), [null, 50.97, 50.97, 43.97, null]);
  const qr = await run('quick_ratio', period);
  assert.equal(col(qr, 'quick_ratio'), [null, rate(2499 / 1799), rate((799 + 700) / (700 + 799)), rate(1799 / 2499), null]);
  assert.equal(col(qr, 'gained_mrr'), [4397, 2499, 1499, 1799, 0].map(dollars));
  const kpi = (await run('kpi_arpa', { month: '2025-04' }))[0];
  assert.equal([kpi.arpa, kpi.previous, kpi.change], [14.66, 16.99, -2.33]);
});

test('NRR per signup cohort and the monthly NRR tile', async () => {
  const rows = await run('nrr_by_cohort', period);
  const jan = rows.filter((r) => r.cohort_month === '2025-01-01');
  // January cohort A+B+D starts at 4397: Feb A+B 2598, Mar A 2499, Apr D (returned) 1799, May D 1799
  assert.equal(col(jan, 'starting_mrr'), [43.97, 43.97, 43.97, 43.97, 43.97]);
  assert.equal(col(jan, 'nrr'), [1, 2598 / 4397, 2499 / 4397, 1799 / 4397, 1799 / 4397].map(rate));
  const feb = rows.filter((r) => r.cohort_month === '2025-02-01');
  assert.equal(col(feb, 'nrr'), [1, 1799 / 2499, 1799 / 2499, 1799 / 2499].map(rate)); // C's downgrade
  assert.equal(rows.filter((r) => r.cohort_month === '2025-03-01').map((r) => r.nrr), [1, 1, 1]);
  const kpi = (await run('kpi_nrr', { month: '2025-04' }))[0];
  // April: start 5097, A's 2499 churns; D's reactivation is not retention -> 2598 / 5097. March: (5097+700-700-799)/5097
  assert.equal([kpi.nrr, kpi.previous], [rate(2598 / 5097), rate(4298 / 5097)]);
});

test('customer and revenue cohort retention heatmaps', async () => {
  const cust = await run('cohort_customer_retention', period);
  const cell = (rows: Rows, cohort: string, k: number) => rows.find((r) => r.cohort_month === cohort && r.months_since === k)!;
  assert.equal(cust.filter((r) => r.cohort_month === '2025-01-01').map((r) => r.retained_customers), [3, 2, 1, 1, 1]);
  assert.is(cell(cust, '2025-01-01', 1).retention, rate(2 / 3));
  assert.is(cell(cust, '2025-01-01', 4).retention, rate(1 / 3));
  assert.is(cell(cust, '2025-02-01', 0).cohort_size, 1);
  assert.is(cust.length, 5 + 4 + 3); // cohorts Jan, Feb, Mar up to May
  const rev = await run('cohort_revenue_retention', period);
  assert.is(cell(rev, '2025-01-01', 2).revenue_retention, rate(2499 / 4397));
  assert.is(cell(rev, '2025-02-01', 1).revenue_retention, rate(1799 / 2499));
  // a country filter narrows the cohorts: GB = B (Jan, churned in Mar) and F (Mar)
  const gb = await run('cohort_customer_retention', { ...period, country: 'GB' });
  assert.equal(gb.filter((r) => r.cohort_month === '2025-01-01').map((r) => r.retained_customers), [1, 1, 0, 0, 0]);
});

test('plan mix at month end', async () => {
  const rows = (await run('plan_mix', period)).filter((r) => r.month === '2025-03-01');
  assert.equal(rows.map((r) => [r.plan_code, r.subscribers, r.mrr]), [['standard_with_ads', 1, 7.99], ['standard', 1, 17.99], ['premium', 1, 24.99]]);
  assert.equal(col(rows, 'mrr_share'), [799 / 5097, 1799 / 5097, 2499 / 5097].map(rate));
});

test('payment first-attempt failure and recovery rates by due month', async () => {
  const rows = await run('payment_failure_recovery', period); // renewals by default
  // Feb: A ok, B fails then recovered; Mar: A, C ok, B fails for good; Apr: C ok, F fails then recovered; May: C, D ok
  assert.equal(col(rows, 'first_attempts'), [0, 2, 3, 2, 2]);
  assert.equal(col(rows, 'first_attempt_failures'), [0, 1, 1, 1, 0]);
  assert.equal(col(rows, 'first_attempt_failure_rate'), [null, 0.5, rate(1 / 3), 0.5, 0]);
  assert.equal(col(rows, 'recovery_rate'), [null, 1, 0, 1, null]);
  // initial charges: E's first payment failed in March (never recovered: the subscription expired)
  const initial = await run('payment_failure_recovery', { ...period, kind: 'initial' });
  assert.equal(col(initial, 'first_attempts'), [3, 1, 2, 1, 0]);
  assert.equal(col(initial, 'first_attempt_failures'), [0, 0, 1, 0, 0]);
});

test('MRR at risk in past_due', async () => {
  const rows = await run('mrr_at_risk', period);
  assert.equal(col(rows, 'mrr_at_risk'), [0, 0, 0, 7.99, 0]);
  assert.is(rows[3].share_of_mrr, rate(799 / 4397));
  const kpi = (await run('kpi_mrr_at_risk', { month: '2025-04' }))[0];
  assert.equal([kpi.mrr_at_risk, kpi.previous, kpi.change], [7.99, 0, 7.99]);
});

test('net cash revenue by month and plan, with a refund', async () => {
  const rows = await run('net_cash_revenue', period);
  const byMonth = (m: string) => rows.filter((r) => r.month === m);
  const sum = (rs: Rows, k: string) => Math.round(rs.reduce((s, r) => s + r[k] * 100, 0));
  // collected: Jan A,B,D initial; Feb A renewal, B retry, C initial; Mar A renewal + 700 proration, C, F;
  // Apr C renewal, D initial; May F retry, D renewal, C renewal (refunded in full on May 6)
  assert.equal(months.map((m) => sum(byMonth(m), 'collected')), [4397, 5097, 5097, 3598, 4397]);
  assert.equal(months.map((m) => sum(byMonth(m), 'refunded')), [0, 0, 0, 0, 1799]);
  assert.equal(months.map((m) => sum(byMonth(m), 'net_cash_revenue')), [4397, 5097, 5097, 3598, 2598]);
  // a charge counts under the plan it billed: A's January standard charge stays standard after A's upgrade
  assert.equal(byMonth('2025-01-01').map((r) => [r.plan_code, r.net_cash_revenue]), [['standard_with_ads', 7.99], ['standard', 35.98]]);
  assert.equal(byMonth('2025-03-01').find((r) => r.plan_code === 'premium')!.net_cash_revenue, 7); // the proration
  // refunds are cash only: May MRR is unchanged
  assert.is((await run('kpi_mrr', { month: '2025-05' }))[0].mrr, 43.97);
  const kpi = (await run('kpi_net_cash_revenue', { month: '2025-05' }))[0];
  assert.equal([kpi.net_cash_revenue, kpi.previous, kpi.change], [25.98, 35.98, -10]);
});

test('signups and the visit -> signup -> first payment funnel', async () => {
  const s = await run('signups', period);
  const per = (m: string, k: string) => s.filter((r) => r.month === m).reduce((a, r) => a + r[k], 0);
  assert.equal(months.map((m) => per(m, 'signups')), [3, 1, 2, 0, 0]); // the analyst account is not a signup
  assert.equal(months.map((m) => per(m, 'first_payments')), [3, 1, 1, 0, 0]); // E never paid
  assert.equal(s.filter((r) => r.month === '2025-03-01').map((r) => [r.plan_code, r.signups, r.first_payments]),
    [['premium', 1, 0], ['standard_with_ads', 1, 1]]);
  const f = await run('signup_funnel', { from: '2025-01', to: '2025-03' });
  // visitors per month: Jan 4, Feb 2, Mar 7 -> 13; signups 6; first payments 5
  assert.equal(f.map((r) => [r.step, r.people]), [['visit', 13], ['signup', 6], ['first payment', 5]]);
  assert.equal(col(f, 'conversion_from_previous'), [null, rate(6 / 13), rate(5 / 6)]);
  assert.equal(col(f, 'conversion_from_visit'), [1, rate(6 / 13), rate(5 / 13)]);
});

test('daily and monthly active viewers', async () => {
  const d = await run('daily_active_viewers', { from: '2025-03', to: '2025-04' });
  assert.equal(d.map((r) => [r.day, r.viewers, r.plays]), [
    ['2025-03-03', 1, 2], ['2025-03-04', 1, 1], ['2025-04-10', 1, 1], ['2025-04-11', 1, 1]]);
  const gb = await run('daily_active_viewers', { from: '2025-03', to: '2025-04', country: 'GB' });
  assert.equal(gb.map((r) => r.day), ['2025-03-04']);
  const m = await run('monthly_active_viewers', { from: '2025-03', to: '2025-04' });
  assert.equal(m.map((r) => [r.month, r.viewers, r.hours_watched]), [['2025-03-01', 2, 3.5], ['2025-04-01', 2, 2]]);
});

test('watch hours by genre and most-watched titles', async () => {
  const g = await run('watch_hours_by_genre', { from: '2025-03', to: '2025-04' });
  // Dramas: Alpha 3600+7200 + Beta 1800+1800; Comedies: Alpha; Documentaries: Gamma
  assert.equal(g.map((r) => [r.genre, r.hours_watched]), [['Dramas', 4], ['Comedies', 3], ['Documentaries', 1.5]]);
  const tv = await run('watch_hours_by_genre', { from: '2025-03', to: '2025-04', type: 'TV Show' });
  assert.equal(tv.map((r) => [r.genre, r.hours_watched]), [['Dramas', 1]]);
  const top = await run('most_watched_titles', { from: '2025-03', to: '2025-04' });
  assert.equal(top.map((r) => [r.rank, r.title, r.hours_watched, r.plays]), [[1, 'Alpha', 3, 2], [2, 'Gamma', 1.5, 1], [3, 'Beta', 1, 2]]);
  assert.equal(col(top, 'completion_rate'), [1, 1, 0]);
  assert.equal((await run('most_watched_titles', { from: '2025-04', to: '2025-04', limit: '1' })).map((r) => r.title), ['Gamma']);
  assert.equal((await run('most_watched_titles', { from: '2025-03', to: '2025-04', genre: 'Documentaries' })).map((r) => r.title), ['Gamma']);
});

test('KPI tiles: MRR, ARR, active subscribers with the change against the previous month', async () => {
  const mrr = (await run('kpi_mrr', { month: '2025-04' }))[0];
  assert.equal([mrr.month, mrr.mrr, mrr.previous, mrr.change, mrr.change_ratio], ['2025-04-01', 43.97, 50.97, -7, rate(-700 / 5097)]);
  // the history starts on Jan 10: January is not a full month, so February (the first full one) has no change
  const arr = (await run('kpi_arr', { month: '2025-02' }))[0];
  assert.equal([arr.arr, arr.previous, arr.change], [dollars(5097 * 12), null, null]);
  const arrMar = (await run('kpi_arr', { month: '2025-03' }))[0];
  assert.equal([arrMar.arr, arrMar.previous, arrMar.change], [dollars(5097 * 12), dollars(5097 * 12), 0]);
  const subs = (await run('kpi_active_subscribers', { month: '2025-01' }))[0];
  assert.equal([subs.active_subscribers, subs.previous, subs.change, subs.change_ratio], [3, null, null, null]);
  const std = (await run('kpi_mrr', { month: '2025-04', plan: 'standard' }))[0];
  assert.equal([std.mrr, std.previous], [35.98, 17.99]);
});

test('the current month ends now: its end MRR is the MRR of today', async () => {
  const thisMonth = NOW.toISOString().slice(0, 7);
  const [row] = await run('mrr_movements', { from: thisMonth, to: thisMonth });
  // C, D and F stay live with no further events: 1799 + 1799 + 799, no movement
  assert.equal([row.start_mrr, row.end_mrr, row.reconciliation_gap], [43.97, 43.97, 0]);
  const kpi = (await run('kpi_mrr'))[0];
  assert.equal([kpi.month.slice(0, 7), kpi.mrr], [thisMonth, 43.97]);
  // flow tiles default to the last complete month, so a partial month is never compared with a full one
  const d = new Date(NOW); d.setUTCDate(1); d.setUTCMonth(d.getUTCMonth() - 1);
  for (const id of ['kpi_net_cash_revenue', 'kpi_customer_churn_rate', 'kpi_nrr']) {
    assert.is((await run(id))[0].month.slice(0, 7), d.toISOString().slice(0, 7), id);
  }
});

test('filters narrow payments, cash, signups, plan mix and MRR at risk to the right customers', async () => {
  // GB customers: B (ads, Feb renewal failed then recovered, Mar renewal failed for good) and F (ads, Apr failure)
  const gb = await run('payment_failure_recovery', { ...period, country: 'GB' });
  assert.equal(col(gb, 'first_attempt_failures'), [0, 1, 1, 1, 0]);
  assert.equal(col(gb, 'recovered'), [0, 1, 0, 1, 0]);
  const premiumCash = await run('net_cash_revenue', { ...period, plan: 'premium' });
  // C's premium initial charge in Feb and A's upgrade proration in March
  assert.equal(premiumCash.map((r) => [r.month, r.net_cash_revenue]), [['2025-02-01', 24.99], ['2025-03-01', 7]]);
  const adsSignups = await run('signups', { ...period, plan: 'standard_with_ads' });
  assert.equal(adsSignups.map((r) => [r.month, r.signups]), [['2025-01-01', 1], ['2025-03-01', 1]]);
  const usMix = (await run('plan_mix', { ...period, country: 'US' })).filter((r) => r.month === '2025-04-01');
  assert.equal(usMix.map((r) => [r.plan_code, r.subscribers, r.subscriber_share]), [['standard', 2, 1]]);
  assert.equal(col(await run('mrr_at_risk', { ...period, plan: 'standard' }), 'mrr_at_risk'), [0, 0, 0, 0, 0]);
  const tv = await run('most_watched_titles', { from: '2025-03', to: '2025-04', type: 'TV Show' });
  assert.equal(tv.map((r) => r.title), ['Beta']);
  // type and genre together are the intersection, in a ranked range (≤ 12 months) and in a summed one (13 months)
  for (const from of ['2025-03', '2024-04']) {
    assert.equal((await run('most_watched_titles', { from, to: '2025-04', type: 'TV Show', genre: 'Dramas' })).map((r) => r.title), ['Beta'], from);
    assert.equal((await run('most_watched_titles', { from, to: '2025-04', type: 'Movie', genre: 'Dramas' })).map((r) => r.title), ['Alpha'], from);
    assert.equal((await run('most_watched_titles', { from, to: '2025-04', type: 'TV Show', genre: 'Documentaries' })).map((r) => r.title), [], from);
    assert.equal((await run('most_watched_titles', { from, to: '2025-04' })).map((r) => r.title), ['Alpha', 'Gamma', 'Beta'], from);
  }
});

test('metric reports are for staff: a subscriber is refused before any SQL runs', async () => {
  try {
    await runReport(t.db, catalog, 'mrr_trend', new URLSearchParams(), { role: 'subscriber', now: NOW });
    assert.unreachable('a subscriber ran mrr_trend');
  } catch (e: any) {
    assert.is(e.status, 403);
  }
});

test('every report runs with its defaults', async () => {
  for (const id of catalog.reports.keys()) {
    const q = new URLSearchParams();
    // as a manager where the report allows it (most do), else as the first role it names
    const roles = catalog.reports.get(id)!.roles as string[];
    const role = (roles.includes('manager') ? 'manager' : roles[0]) as Role;
    const res = await runReport(t.db, catalog, id, q, { role, now: NOW, cache: false });
    assert.ok(Array.isArray(res.rows), id);
    assert.ok(res.spec && typeof res.spec === 'object', id);
  }
});

test.run();
