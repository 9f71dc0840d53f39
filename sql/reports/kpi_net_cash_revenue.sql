-- @title Net cash revenue
-- @description Money collected minus refunds paid out in the month. Defaults to the last complete month.
-- @definition Cash, not MRR: charges that succeeded in the month (including ones refunded later) minus refunds paid
-- @definition out in the month; a charge counts under the plan it billed (mart_cash_monthly).
-- @definition The change is relative to the month before (change_ratio = change ÷ previous); none in the history's
-- @definition first full month or before (the month before it holds the warm-up), per mrr_metrics_monthly().
-- @marts mart_cash_monthly mart_mrr_movements mart_mrr_balance_monthly
-- @param month month default=-1m label="Month (default: the last complete month)"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=net_cash_revenue delta=change_ratio format=currency
WITH m AS (
  SELECT x.month, x.partial, x.period_note, x.first_full_month,
         (SELECT round(coalesce(sum(c.collected_cents - c.refunded_cents), 0) / 100.0, 2) FROM mart_cash_monthly c
          WHERE c.month = x.month AND (:plan::text[] IS NULL OR c.plan_code = ANY(:plan::text[]))
            AND (:country::text[] IS NULL OR c.country = ANY(:country::text[]))) AS v
  FROM mrr_metrics_monthly((:month - interval '1 month')::date, :month, NULL, NULL) x
)
SELECT cur.month, cur.partial, cur.period_note,
       cur.v AS net_cash_revenue,
       prev.v AS previous,
       cur.v - prev.v AS change,
       round((cur.v - prev.v) / nullif(prev.v, 0), 4) AS change_ratio
FROM m cur
LEFT JOIN m prev ON prev.month = (cur.month - interval '1 month')::date AND prev.month >= prev.first_full_month
WHERE cur.month = :month
