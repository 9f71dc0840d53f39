-- @title Customer churn rate
-- @description Share of the month's starting customers who churned in it. Defaults to the last complete month.
-- @definition Churn events in the month (a customer's last subscription ending, at the end of the paid period; a churn
-- @definition and a return in the same month both count) ÷ customers at the month start. None for the month in progress.
-- @definition The change is the difference from the month before in percentage points (0.004 = 0.4 points); none in the
-- @definition history's first full month or before (the month before it holds the warm-up: customers already
-- @definition subscribed when the history starts). One definition: mrr_metrics_monthly() (sql/schema/0013_metrics.sql).
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param month month default=-1m label="Month (default: the last complete month)"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=customer_churn_rate delta=change format=percent
WITH m AS (
  SELECT x.*, x.customer_churn_rate AS v
  FROM mrr_metrics_monthly((:month - interval '1 month')::date, :month, :plan::text[], :country::text[]) x
)
SELECT cur.month, cur.partial, cur.period_note,
       cur.v AS customer_churn_rate,
       prev.v AS previous,
       cur.v - prev.v AS change,
       round((cur.v - prev.v) / nullif(prev.v, 0), 4) AS change_ratio
FROM m cur
LEFT JOIN m prev ON prev.month = (cur.month - interval '1 month')::date AND prev.month >= prev.first_full_month
WHERE cur.month = :month
