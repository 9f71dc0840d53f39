-- @title ARPA
-- @description Average MRR per active customer at the end of each month.
-- @definition ARPA = MRR ÷ active customers, both measured at the end of the month (for the current month, now).
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
-- @chart line x=month:T y=arpa:Q title="ARPA (USD)"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month, sum(end_cents) AS end_cents, sum(customers_end) AS customers
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(coalesce(m.end_cents, 0) / 100.0, 2)                   AS mrr,
       coalesce(m.customers, 0)::int                                 AS active_customers,
       round(m.end_cents / nullif(m.customers, 0) / 100.0, 2)        AS arpa
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
