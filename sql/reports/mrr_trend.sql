-- @title MRR and ARR trend
-- @description Monthly recurring revenue and its annualized run rate at the end of each month.
-- @definition MRR is the sum of the monthly-normalized plan prices (annual plans ÷ 12) of subscriptions in active or
-- @definition past_due at the instant measured: the end of each month (for the current month, now). Taxes and refunds
-- @definition are excluded. ARR = MRR × 12. Under a plan filter a customer counts under the plan held at month end.
-- @roles admin analyst manager
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month, sum(end_cents) AS end_cents, sum(customers_end) AS customers
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(coalesce(m.end_cents, 0) / 100.0, 2)      AS mrr,
       round(coalesce(m.end_cents, 0) * 12 / 100.0, 2) AS arr,
       coalesce(m.customers, 0)::int                    AS active_customers
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
