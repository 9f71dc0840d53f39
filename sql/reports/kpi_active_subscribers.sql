-- @title Active subscribers
-- @description Customers with a paying subscription at the end of the month (now, for the current month).
-- @definition Active subscribers: customers with at least one subscription in active or past_due at month end.
-- @definition The change is relative to the month before (change_ratio = change ÷ previous); none in the
-- @definition history's first full month or before (the month before it holds the warm-up: customers already
-- @definition subscribed when the history starts). One definition: mrr_metrics_monthly() (sql/schema/0013_metrics.sql).
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param month month default=0m label="Month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=active_subscribers delta=change_ratio format=number
WITH m AS (
  SELECT x.*, x.customers_end::numeric AS v
  FROM mrr_metrics_monthly((:month - interval '1 month')::date, :month, :plan::text[], :country::text[]) x
)
SELECT cur.month, cur.partial, cur.period_note,
       cur.v AS active_subscribers,
       prev.v AS previous,
       cur.v - prev.v AS change,
       round((cur.v - prev.v) / nullif(prev.v, 0), 4) AS change_ratio
FROM m cur
LEFT JOIN m prev ON prev.month = (cur.month - interval '1 month')::date AND prev.month >= prev.first_full_month
WHERE cur.month = :month
