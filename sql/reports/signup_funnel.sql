-- @title Visit → signup → first payment funnel
-- @description Visitors, signups and first payments over the period, with the conversion between steps.
-- @definition Visitors = distinct anonymous visitors in each month, summed over the months of the period (a visitor
-- @definition seen in two months counts twice). Signups = subscriber accounts created in the period. First payments =
-- @definition customers whose first successful charge settled in the period. Conversion = step ÷ previous step.
-- @marts mart_visits_monthly mart_signups_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
WITH v AS (
  SELECT coalesce(sum(visitors), 0) AS n FROM mart_visits_monthly WHERE month BETWEEN :from::date AND :to::date
),
s AS (
  SELECT coalesce(sum(signups), 0) AS signups, coalesce(sum(first_payments), 0) AS paid
  FROM mart_signups_monthly WHERE month BETWEEN :from::date AND :to::date
),
steps AS (
  SELECT 1 AS step_order, 'visit' AS step, v.n AS people FROM v
  UNION ALL SELECT 2, 'signup', s.signups FROM s
  UNION ALL SELECT 3, 'first payment', s.paid FROM s
)
SELECT step_order, step, people::int AS people,
       round(people::numeric / nullif(lag(people) OVER (ORDER BY step_order), 0), 4) AS conversion_from_previous,
       round(people::numeric / nullif(first_value(people) OVER (ORDER BY step_order), 0), 4) AS conversion_from_visit
FROM steps
ORDER BY step_order
