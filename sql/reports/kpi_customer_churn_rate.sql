-- @title Customer churn rate
-- @description Share of the month's starting customers who churned in it. Defaults to the last complete month.
-- @definition Customers whose MRR went from > 0 at the month start to 0 at its end ÷ customers with MRR > 0 at the month start.
-- @definition The change is the difference from the month before in percentage points (0.004 = 0.4 points).
-- @marts mart_mrr_monthly
-- @param month month default=-1m label="Month (default: the last complete month)"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
-- @chart kpi value=customer_churn_rate delta=change format=percent
WITH m AS (
  SELECT month,
         sum(start_cents) AS start_cents,
         sum(end_cents) AS end_cents,
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
  SELECT p.month, round(m.churned::numeric / nullif(m.customers_start, 0), 4) AS value
  FROM (VALUES (:month), ((:month - interval '1 month')::date)) AS p(month)
  LEFT JOIN m USING (month)
)
SELECT cur.month,
       cur.value AS customer_churn_rate,
       prev.value AS previous,
       cur.value - prev.value AS change,
       round((cur.value - prev.value) / nullif(prev.value, 0), 4) AS change_ratio
FROM v cur JOIN v prev ON prev.month = (cur.month - interval '1 month')::date
WHERE cur.month = :month
