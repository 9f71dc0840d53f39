-- @title MRR at risk
-- @description MRR of past_due subscriptions (renewal failed, retries running) at the end of the month.
-- @definition MRR at risk = MRR of subscriptions in past_due at month end (now, for the current month).
-- @definition The change is relative to the month before (change_ratio = change ÷ previous); none in the history's
-- @definition first full month or before (the month before it holds the warm-up), per mrr_metrics_monthly().
-- @marts mart_mrr_balance_monthly mart_mrr_movements
-- @param month month default=0m label="Month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=mrr_at_risk delta=change_ratio format=currency
WITH m AS (
  SELECT x.month, x.partial, x.period_note, x.first_full_month,
         (SELECT round(coalesce(sum(mm.past_due_cents), 0) / 100.0, 2) FROM mart_mrr_balance_monthly mm
          WHERE mm.month = x.month AND (:plan::text[] IS NULL OR mm.plan_code = ANY(:plan::text[]))
            AND (:country::text[] IS NULL OR mm.country = ANY(:country::text[]))) AS v
  FROM mrr_metrics_monthly((:month - interval '1 month')::date, :month, :plan::text[], :country::text[]) x
)
SELECT cur.month, cur.partial, cur.period_note,
       cur.v AS mrr_at_risk,
       prev.v AS previous,
       cur.v - prev.v AS change,
       round((cur.v - prev.v) / nullif(prev.v, 0), 4) AS change_ratio
FROM m cur
LEFT JOIN m prev ON prev.month = (cur.month - interval '1 month')::date AND prev.month >= prev.first_full_month
WHERE cur.month = :month
