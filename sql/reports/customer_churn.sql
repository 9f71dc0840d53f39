-- @title Customer churn rate
-- @description Monthly customer churn, gross and net of reactivations, split voluntary / involuntary.
-- @definition Churn rate = customers whose MRR went from > 0 at the month start to 0 at the month end ÷ customers
-- @definition with MRR > 0 at the month start. Churn counts when the paid period ends. Voluntary: canceled at period
-- @definition end on request; involuntary: payment retries ran out. Net churn rate = (churned − reactivated) ÷
-- @definition customers at month start, where reactivated customers are returning former customers.
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month,
         sum(customers_start) AS customers_start,
         coalesce(sum(customers) FILTER (WHERE movement = 'churn'), 0) AS churned,
         coalesce(sum(customers) FILTER (WHERE movement = 'churn' AND churn_reason = 'voluntary'), 0) AS voluntary,
         coalesce(sum(customers) FILTER (WHERE movement = 'churn' AND churn_reason = 'involuntary'), 0) AS involuntary,
         coalesce(sum(customers) FILTER (WHERE movement = 'reactivation'), 0) AS reactivated
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       coalesce(m.customers_start, 0)::int AS customers_at_start,
       coalesce(m.churned, 0)::int         AS churned,
       coalesce(m.voluntary, 0)::int       AS voluntary_churned,
       coalesce(m.involuntary, 0)::int     AS involuntary_churned,
       coalesce(m.reactivated, 0)::int     AS reactivated,
       round(m.churned::numeric / nullif(m.customers_start, 0), 4)                   AS churn_rate,
       round(m.voluntary::numeric / nullif(m.customers_start, 0), 4)                 AS voluntary_churn_rate,
       round(m.involuntary::numeric / nullif(m.customers_start, 0), 4)               AS involuntary_churn_rate,
       round((m.churned - m.reactivated)::numeric / nullif(m.customers_start, 0), 4) AS net_churn_rate
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
