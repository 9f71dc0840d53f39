-- @title MRR reconciliation check
-- @description Does every month reconcile, in total, for each plan and for each customer country? A staff check.
-- @definition For each month and segment (all customers, each plan, each account country): start MRR + opening + new
-- @definition + expansion + reactivation + transfer_in − contraction − churn − transfer_out = end MRR by construction of
-- @definition the movements (events, mart_mrr_movements), and gap = MRR at month end computed point in time
-- @definition (mart_mrr_monthly, the latest subscription event of every subscription) − that end. status: ok, or
-- @definition pending for a month that closed after a mart's last refresh. A closed month with a gap fails this
-- @definition report (and MRR movements) with an error naming it. Definitions: mrr_metrics_monthly(), sql/schema/0013_metrics.sql.
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @chart rect x=month:O y=segment:N color=gap:Q title="Reconciliation gap per month and segment (USD; 0 everywhere)"
WITH segments AS (
  SELECT 'all customers' AS segment, 0 AS ord, NULL::text[] AS plans, NULL::text[] AS countries
  UNION ALL
  SELECT 'plan ' || code, 1, ARRAY[code], NULL FROM plans
  UNION ALL
  SELECT 'country ' || country, 2, NULL, ARRAY[country] FROM (SELECT DISTINCT coalesce(country, '--') AS country FROM mart_mrr_movements WHERE country <> '*') c
)
SELECT x.month, x.partial, s.segment,
       round(x.start_cents / 100.0, 2) AS start_mrr,
       round((x.opening_cents + x.new_cents + x.expansion_cents + x.reactivation_cents + x.transfer_in_cents
              - x.contraction_cents - x.churn_cents - x.transfer_out_cents) / 100.0, 2) AS net_movements,
       round(x.end_cents / 100.0, 2) AS end_mrr,
       round(x.balance_end_cents / 100.0, 2) AS mrr_at_month_end,
       round(x.reconciliation_gap_cents / 100.0, 2) AS gap,
       x.customers_end - x.balance_customers_end AS customer_gap,
       CASE WHEN x.month >= mrr_checked_before() THEN 'pending' ELSE 'ok' END AS status
FROM segments s
CROSS JOIN LATERAL mrr_metrics_monthly(:from::date, :to::date, s.plans, s.countries) x
WHERE mrr_assert_reconciled((x.reconciliation_gap_cents = 0 AND x.customers_end = x.balance_customers_end) OR x.month >= mrr_checked_before(),
        'month ' || x.month || ', ' || s.segment || ', gap ' || x.reconciliation_gap_cents || ' cents, '
        || (x.customers_end - x.balance_customers_end) || ' customers')
ORDER BY x.month, s.ord, s.segment
