-- @mart mart_mrr_reconciliation
-- @unique month, segment
-- @refresh */15 * * * *
-- @depends mart_mrr_movements mart_mrr_balance_monthly
-- The reconciliation check of every month for all customers, each plan and each customer country: one
-- mrr_metrics_monthly() call per segment (the one definition, sql/schema/0013_metrics.sql), made once per refresh
-- instead of ~30 times on every request of mrr_reconciliation. The function computes every month of the history
-- whatever range it is asked for (its running sums start at the first month), so the report's range only filters rows.
-- checked_before: mrr_checked_before() as this build saw its sources, so a month is judged (pending or ok) against the
-- refreshes its rows were computed from, not against later ones this mart has not read yet.
WITH segments AS (
  SELECT 'all customers' AS segment, 0 AS ord, NULL::text[] AS plans, NULL::text[] AS countries
  UNION ALL
  SELECT 'plan ' || code, 1, ARRAY[code], NULL FROM plans
  UNION ALL
  SELECT 'country ' || country, 2, NULL, ARRAY[country] FROM (SELECT DISTINCT coalesce(country, '--') AS country FROM mart_mrr_movements WHERE country <> '*') c
)
SELECT x.month, s.segment, s.ord, x.partial,
       x.start_cents,
       x.opening_cents + x.new_cents + x.expansion_cents + x.reactivation_cents + x.transfer_in_cents
         - x.contraction_cents - x.churn_cents - x.transfer_out_cents AS net_movements_cents,
       x.end_cents, x.balance_end_cents, x.reconciliation_gap_cents,
       x.customers_end - x.balance_customers_end AS customer_gap,
       mrr_checked_before() AS checked_before
FROM segments s
CROSS JOIN LATERAL mrr_metrics_monthly(NULL, NULL, s.plans, s.countries) x
