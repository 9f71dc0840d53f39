-- @title Revenue retention by signup cohort
-- @description Share of each signup cohort's starting MRR still recurring, by months since signup (heatmap).
-- @definition A customer's cohort is the month they signed up and first paid; the cohort's starting MRR is its
-- @definition members' MRR at the end of the cohort month. Revenue retention at month k = the members' MRR at the end
-- @definition of cohort month + k ÷ starting MRR, so expansion, contraction, churn and reactivation all count (it can
-- @definition exceed 100 %). Customers whose account predates the billing history are left out.
-- @marts mart_cohort_monthly
-- @param from month default=-11m label="First cohort"
-- @param to month default=0m label="Last month"
-- @param country multi lookup=customer_countries label="Customer countries"
WITH c AS (
  SELECT cohort_month, month, months_since, sum(end_cents) AS end_cents
  FROM mart_cohort_monthly
  WHERE cohort_month BETWEEN :from::date AND :to::date AND month <= :to::date
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY cohort_month, month, months_since
),
sizes AS (
  SELECT cohort_month, end_cents AS starting_cents FROM c WHERE months_since = 0
),
grid AS (
  SELECT s.cohort_month, s.starting_cents, g::date AS month,
         ((extract(year FROM g) - extract(year FROM s.cohort_month)) * 12
           + extract(month FROM g) - extract(month FROM s.cohort_month))::int AS months_since
  FROM sizes s
  CROSS JOIN LATERAL generate_series(s.cohort_month, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
)
SELECT grid.cohort_month, grid.months_since, grid.month, grid.month = date_trunc('month', now())::date AS partial,
       round(grid.starting_cents / 100.0, 2) AS starting_mrr,
       round(coalesce(c.end_cents, 0) / 100.0, 2) AS mrr,
       round(coalesce(c.end_cents, 0) / nullif(grid.starting_cents, 0), 4) AS revenue_retention
FROM grid LEFT JOIN c USING (cohort_month, month)
ORDER BY grid.cohort_month, grid.months_since
