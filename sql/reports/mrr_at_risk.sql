-- @title MRR at risk (past due)
-- @description MRR of subscriptions in past_due (a renewal failed, retries running) at the end of each month.
-- @definition MRR at risk = MRR of subscriptions in past_due at month end (for the current month, now). These
-- @definition customers keep access and still count in MRR until retries succeed (recovered) or run out (involuntary churn).
-- @marts mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month, sum(past_due_cents) AS at_risk_cents, sum(past_due_customers) AS past_due, sum(end_cents) AS end_cents
  FROM mart_mrr_balance_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month, months.month = date_trunc('month', now())::date AS partial,
       coalesce(m.past_due, 0)::int                          AS past_due_customers,
       round(coalesce(m.at_risk_cents, 0) / 100.0, 2)         AS mrr_at_risk,
       round(coalesce(m.end_cents, 0) / 100.0, 2)             AS mrr,
       round(m.at_risk_cents / nullif(m.end_cents, 0), 4)     AS share_of_mrr
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
