// Edge cases of the MRR definitions, on their own small history (2024, UTC), answers worked out by hand:
//   G standard activated exactly at 2024-06-01T00:00Z, canceled at period end exactly 2024-07-01T00:00Z
//     -> MRR at an instant includes events AT that instant: G counts at Jun 1 (new in May), not at Jul 1 (churn in June)
//   I annual plan (249.90 / year) from Jun 10 -> MRR 2082.50 cents (÷ 12), cash 249.90 in June
//   J ads from May 20, upgraded to standard May 25 -> movements are events: new 799 (May 20) + expansion 1000 (May 25)
//   K standard Jun 5, canceled -> ends Jul 5 (new in June, churn in July)
//   M standard May 10, canceled -> ends Jun 10; a premium subscription starts at the same instant -> movements are per
//     customer and events of one instant net out: June is an expansion of 700 for M, not a churn plus a reactivation
// MRR: Jun 1 = G 1799 + J 1799 + M 1799 = 5397; Jul 1 = I 2082.50 + J 1799 + K 1799 + M 2499 = 8179.50;
//      Aug 1 = I + J + M = 6380.50
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, type Catalog } from '../server/reports/engine.ts';
import { Fixture } from './fixtures/metrics/builder.ts';

const t = useDatabase(test);
let catalog: Catalog;

test.before(async () => {
  await t.db.query(sql`INSERT INTO plans (code, name, price_cents, billing_interval, quality, screens, has_ads, sort_order)
    VALUES ('premium_annual', 'Premium (annual)', 24990, 'year', 'UHD', 4, false, 4)`);
  const f = new Fixture(t.db);
  const [G, I, J, K, M] = [
    await f.user({ createdAt: '2024-06-01' }), await f.user({ createdAt: '2024-06-10' }), await f.user({ createdAt: '2024-05-20' }),
    await f.user({ createdAt: '2024-06-05' }), await f.user({ createdAt: '2024-05-10' })];
  const g = await f.subscribe(G, 'standard', '2024-06-01T00:00:00Z');
  await f.cancel(g, '2024-06-10');
  await f.subscribe(I, 'premium_annual', '2024-06-10');
  const j = await f.subscribe(J, 'standard_with_ads', '2024-05-20');
  await f.changePlan(j, 'standard', '2024-05-25');
  const k = await f.subscribe(K, 'standard', '2024-06-05');
  await f.cancel(k, '2024-06-20');
  const m = await f.subscribe(M, 'standard', '2024-05-10');
  await f.cancel(m, '2024-05-20');
  await f.subscribe(M, 'premium', '2024-06-10');
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const r = await refreshMarts(t.db, catalog);
  if (r.results.some((x) => !x.ok)) throw new Error(JSON.stringify(r.results.filter((x) => !x.ok)));
});

async function run(id: string, params: Record<string, string> = {}) {
  const res = await runReport(t.db, catalog, id, new URLSearchParams(params), { role: 'analyst', now: new Date(), cache: false });
  return res.rows as Record<string, any>[];
}
const period = { from: '2024-05', to: '2024-07' };

test('events at a month boundary count at that instant; annual plans count a twelfth', async () => {
  const trend = await run('mrr_trend', period);
  assert.equal(trend.map((r) => [r.month, r.mrr, r.arr]), [
    ['2024-05-01', 53.97, 647.64], ['2024-06-01', 81.8, 981.54], ['2024-07-01', 63.81, 765.66]]);
  const annual = (await run('plan_mix', period)).filter((r) => r.plan_code === 'premium_annual');
  assert.equal(annual.map((r) => [r.month, r.subscribers, r.mrr]), [['2024-06-01', 1, 20.83], ['2024-07-01', 1, 20.83]]);
});

test('movements are per customer: same-instant switch is an expansion, an upgrade in the signup month is new + expansion', async () => {
  const rows = await run('mrr_movements', period);
  const keys = ['start_mrr', 'new', 'expansion', 'reactivation', 'contraction', 'churn', 'end_mrr', 'reconciliation_gap'];
  assert.equal(rows.map((r) => keys.map((k) => r[k])), [
    [0, 43.97, 10, 0, 0, 0, 53.97, 0],        // new M 17.99 + J 7.99 + G 17.99 (at Jun 1 00:00: May's end); J +10
    [53.97, 38.82, 7, 0, 0, 17.99, 81.8, 0],   // new I 20.825 + K 17.99 = 38.815 -> 38.82; M +7; G churns
    [81.8, 0, 0, 0, 0, 17.99, 63.81, 0],      // K churns
  ]);
  const churn = await run('customer_churn', period);
  assert.equal(churn.map((r) => [r.customers_at_start, r.churned, r.voluntary_churned, r.reactivated]), [[0, 0, 0, 0], [3, 1, 1, 0], [4, 1, 1, 0]]); // July starts with I, J, K, M
});

test('an annual charge is cash of its month under the annual plan', async () => {
  const cash = (await run('net_cash_revenue', period)).filter((r) => r.month === '2024-06-01');
  assert.equal(cash.map((r) => [r.plan_code, r.collected]), [['standard', 35.98], ['premium', 24.99], ['premium_annual', 249.9]]);
});

test.run();
