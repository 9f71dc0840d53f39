-- @title Active subscribers
-- @description Customers with a paying subscription at the end of each month, and how many of them are past due.
-- @definition Active subscribers: customers with at least one subscription in active or past_due at the end of the
-- @definition month (for the current month, now). past_due customers keep access while payment retries run.
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
-- @chart line x=month:T y=active_subscribers:Q title="Active subscribers"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month, sum(customers_end) AS active, sum(past_due_customers) AS past_due
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       coalesce(m.active, 0)::int   AS active_subscribers,
       coalesce(m.past_due, 0)::int AS past_due_subscribers
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
