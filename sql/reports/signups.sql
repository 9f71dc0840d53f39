-- @title Signups and first payments
-- @description New subscriber accounts and customers' first successful payments per month, by first plan.
-- @definition Signups = subscriber accounts created in the month. First payments = customers whose first successful
-- @definition charge settled in the month. Plan = the plan of the customer's first subscription ('none' if never subscribed).
-- @marts mart_signups_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
SELECT month, month = date_trunc('month', now())::date AS partial, plan_code,
       sum(signups)::int AS signups,
       sum(first_payments)::int AS first_payments
FROM mart_signups_monthly
WHERE month BETWEEN :from::date AND :to::date
  AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
  AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
GROUP BY month, plan_code
ORDER BY month, plan_code
