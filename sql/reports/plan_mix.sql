-- @title Plan mix
-- @description Active subscribers and MRR by plan at the end of each month, with each plan's share.
-- @definition A customer counts under the plan of their paying subscription at month end. Shares are of all active
-- @definition subscribers / all MRR at that month end (within the country filter).
-- @marts mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param country multi lookup=customer_countries label="Customer countries"
WITH m AS (
  SELECT month, plan_code, sum(customers_end) AS subscribers, sum(end_cents) AS end_cents
  FROM mart_mrr_balance_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
    AND end_cents > 0
  GROUP BY month, plan_code
)
SELECT m.month, m.month = date_trunc('month', now())::date AS partial, m.plan_code, p.name AS plan_name,
       m.subscribers::int AS subscribers,
       round(m.end_cents / 100.0, 2) AS mrr,
       round(m.subscribers::numeric / sum(m.subscribers) OVER (PARTITION BY m.month), 4) AS subscriber_share,
       round(m.end_cents / sum(m.end_cents) OVER (PARTITION BY m.month), 4)              AS mrr_share
FROM m JOIN plans p ON p.code = m.plan_code
ORDER BY m.month, p.sort_order
