-- @title Payment failure and recovery rates
-- @description First-attempt failure rate of charges and the share of failed renewals recovered by retries.
-- @definition Charges are grouped by the month their billing period starts (the due date). First-attempt failure
-- @definition rate = first attempts that failed ÷ settled first attempts. Recovery rate = failed first attempts later
-- @definition collected by a retry (days 1, 3, 7, 14) ÷ failed first attempts; the latest month is provisional while
-- @definition retries are still running. kind: renewal (default), initial (signup) or proration charges.
-- @marts mart_payment_attempts_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param kind multi values="renewal,initial,proration" default=renewal label="Charge kinds"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month, sum(first_attempts) AS first_attempts, sum(first_attempt_failures) AS failures, sum(recovered) AS recovered
  FROM mart_payment_attempts_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:kind::text[] IS NULL OR kind = ANY(:kind::text[]))
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month, months.month = date_trunc('month', now())::date AS partial,
       coalesce(m.first_attempts, 0)::int AS first_attempts,
       coalesce(m.failures, 0)::int       AS first_attempt_failures,
       coalesce(m.recovered, 0)::int      AS recovered,
       round(m.failures::numeric / nullif(m.first_attempts, 0), 4) AS first_attempt_failure_rate,
       round(m.recovered::numeric / nullif(m.failures, 0), 4)      AS recovery_rate
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
