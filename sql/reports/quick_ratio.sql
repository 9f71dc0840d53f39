-- @title SaaS quick ratio
-- @description MRR gained per dollar of MRR lost, month by month.
-- @definition Quick ratio = (new + expansion + reactivation MRR) ÷ (contraction + churned MRR). Above 1 the base grows;
-- @definition empty in a month that lost no MRR.
-- @marts mart_mrr_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi values="US,CA,GB,DE,FR,ES,IT,NL,SE,BR,MX,AR,IN,JP,KR,AU" label="Customer countries"
-- @chart line x=month:T y=quick_ratio:Q title="Quick ratio"
WITH months AS (
  SELECT g::date AS month
  FROM generate_series(:from::date, least(:to::date, date_trunc('month', now())::date), interval '1 month') AS g
),
m AS (
  SELECT month,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement IN ('new', 'expansion', 'reactivation')), 0) AS gained_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement IN ('contraction', 'churn')), 0)             AS lost_cents
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(coalesce(m.gained_cents, 0) / 100.0, 2)          AS gained_mrr,
       round(coalesce(m.lost_cents, 0) / 100.0, 2)            AS lost_mrr,
       round(m.gained_cents / nullif(m.lost_cents, 0), 4)     AS quick_ratio
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
