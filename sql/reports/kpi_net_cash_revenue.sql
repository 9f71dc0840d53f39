-- @title Net cash revenue
-- @description Money collected minus refunds paid out in the month. Defaults to the last complete month.
-- @definition Cash, not MRR: charges that succeeded in the month (including ones refunded later) minus refunds paid
-- @definition out in the month. The change is relative to the month before (change_ratio = change ÷ previous).
-- @marts mart_cash_monthly
-- @param month month default=-1m label="Month (default: the last complete month)"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart kpi value=net_cash_revenue delta=change_ratio format=currency
WITH m AS (
  SELECT month, sum(collected_cents - refunded_cents) AS net_cents
  FROM mart_cash_monthly
  WHERE month IN (:month, (:month - interval '1 month')::date)
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
),
v AS (
  SELECT p.month, round(coalesce(m.net_cents, 0) / 100.0, 2) AS value
  FROM (VALUES (:month), ((:month - interval '1 month')::date)) AS p(month)
  LEFT JOIN m USING (month)
)
SELECT cur.month,
       cur.value AS net_cash_revenue,
       prev.value AS previous,
       cur.value - prev.value AS change,
       round((cur.value - prev.value) / nullif(prev.value, 0), 4) AS change_ratio
FROM v cur JOIN v prev ON prev.month = (cur.month - interval '1 month')::date
WHERE cur.month = :month
