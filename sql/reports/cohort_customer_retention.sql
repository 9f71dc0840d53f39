-- @title Customer retention by signup cohort
-- @description Share of each signup cohort still paying, by months since signup (heatmap).
-- @definition A customer's cohort is the month they signed up and first paid. Retention at month k = cohort members
-- @definition with MRR > 0 at the end of cohort month + k ÷ cohort size (members paying at the end of the cohort
-- @definition month). Returning customers count again once they pay again. Customers whose account predates the
-- @definition billing history are left out (their first payment is unknown).
-- @marts mart_cohort_monthly
-- @param from month default=-11m label="First cohort"
-- @param to month default=0m label="Last month"
-- @param country multi lookup=customer_countries label="Customer countries"
WITH c AS (
  SELECT cohort_month, month, months_since, sum(customers_end) AS customers
  FROM mart_cohort_monthly
  WHERE cohort_month BETWEEN :from::date AND :to::date AND month <= :to::date
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY cohort_month, month, months_since
),
sizes AS (
  SELECT cohort_month, customers AS cohort_size FROM c WHERE months_since = 0
),
grid AS (
  SELECT s.cohort_month, s.cohort_size, g::date AS month,
         ((extract(year FROM g) - extract(year FROM s.cohort_month)) * 12
           + extract(month FROM g) - extract(month FROM s.cohort_month))::int AS months_since
  FROM sizes s
  CROSS JOIN LATERAL generate_series(s.cohort_month, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
)
SELECT grid.cohort_month, grid.months_since, grid.month, grid.month = date_trunc('month', now())::date AS partial,
       grid.cohort_size::int AS cohort_size,
       coalesce(c.customers, 0)::int AS retained_customers,
       round(coalesce(c.customers, 0)::numeric / nullif(grid.cohort_size, 0), 4) AS retention
FROM grid LEFT JOIN c USING (cohort_month, month)
ORDER BY grid.cohort_month, grid.months_since
