-- @title MRR at risk
-- @description MRR of past_due subscriptions (renewal failed, retries running) at the end of the month.
-- @definition MRR at risk = MRR of subscriptions in past_due at month end (now, for the current month).
-- @definition The change is relative to the month before (change_ratio = change ÷ previous).
-- @marts mart_mrr_monthly
-- @param month month default=0m label="Month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=mrr_at_risk delta=change_ratio format=currency
WITH m AS (
  SELECT month,
         sum(start_cents) AS start_cents,
         sum(end_cents) AS end_cents,
         sum(past_due_cents) AS past_due_cents,
         sum(customers_start) AS customers_start,
         sum(customers_end) AS customers_end,
         coalesce(sum(customers) FILTER (WHERE movement = 'churn'), 0) AS churned,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'churn'), 0) AS churn_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'contraction'), 0) AS contraction_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'expansion'), 0) AS expansion_cents
  FROM mart_mrr_monthly
  WHERE month IN (:month, (:month - interval '1 month')::date)
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
),
v AS (
  SELECT p.month, round(coalesce(m.past_due_cents, 0) / 100.0, 2) AS value
  FROM (VALUES (:month), ((:month - interval '1 month')::date)) AS p(month)
  LEFT JOIN m USING (month)
)
SELECT cur.month,
       cur.value AS mrr_at_risk,
       prev.value AS previous,
       cur.value - prev.value AS change,
       round((cur.value - prev.value) / nullif(prev.value, 0), 4) AS change_ratio
FROM v cur JOIN v prev ON prev.month = (cur.month - interval '1 month')::date
WHERE cur.month = :month
