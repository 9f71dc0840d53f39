-- @title Net revenue retention by signup cohort
-- @description Each signup cohort's MRR at every month end as a share of its starting MRR.
-- @definition Cohort = the customers who signed up and first paid in a month. NRR of a cohort at a month = MRR of the cohort's
-- @definition customers at that month end ÷ the cohort's starting MRR (their MRR at the end of the signup month). Includes expansion, contraction, churn and
-- @definition reactivation of the cohort's own customers and never new customers, so it can exceed 100 %.
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
  SELECT s.cohort_month, s.starting_cents, g::date AS month
  FROM sizes s
  CROSS JOIN LATERAL generate_series(s.cohort_month, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
)
SELECT grid.cohort_month, grid.month, grid.month = date_trunc('month', now())::date AS partial,
       ((extract(year FROM grid.month) - extract(year FROM grid.cohort_month)) * 12
         + extract(month FROM grid.month) - extract(month FROM grid.cohort_month))::int AS months_since,
       round(grid.starting_cents / 100.0, 2) AS starting_mrr,
       round(coalesce(c.end_cents, 0) / 100.0, 2) AS mrr,
       round(coalesce(c.end_cents, 0) / nullif(grid.starting_cents, 0), 4) AS nrr
FROM grid LEFT JOIN c USING (cohort_month, month)
ORDER BY grid.cohort_month, grid.month
