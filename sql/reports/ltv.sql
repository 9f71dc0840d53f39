-- @title Customer lifetime value
-- @description Expected revenue per customer: ARPA divided by the monthly customer churn rate.
-- @definition LTV = ARPA ÷ monthly customer churn rate, with ARPA = MRR ÷ active customers at month end and churn
-- @definition rate = customers churned in the month ÷ customers active at its start. Empty in a month without churn.
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
-- @chart line x=month:T y=ltv:Q title="LTV (USD)"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month,
         sum(end_cents) AS end_cents,
         sum(customers_end) AS customers_end,
         sum(customers_start) AS customers_start,
         coalesce(sum(customers) FILTER (WHERE movement = 'churn'), 0) AS churned
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(m.end_cents / nullif(m.customers_end, 0) / 100.0, 2)          AS arpa,
       round(m.churned::numeric / nullif(m.customers_start, 0), 4)         AS customer_churn_rate,
       round(m.end_cents / nullif(m.customers_end, 0) / 100.0
             / (nullif(m.churned, 0)::numeric / nullif(m.customers_start, 0)), 2)     AS ltv
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
