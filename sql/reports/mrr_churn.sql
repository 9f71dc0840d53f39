-- @title Gross and net MRR churn
-- @description Share of the month's starting MRR lost to churn and contraction, before and after expansion and reactivation.
-- @definition Gross MRR churn = (churned MRR + contraction) ÷ MRR at month start. Net MRR churn = (churned MRR +
-- @definition contraction − expansion − reactivation) ÷ MRR at month start; negative net churn means the existing
-- @definition base grew. Movements as in the MRR movements report.
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
         sum(start_cents) AS start_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'churn'), 0)        AS churn_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'contraction'), 0)  AS contraction_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'expansion'), 0)    AS expansion_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'reactivation'), 0) AS reactivation_cents
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(coalesce(m.start_cents, 0) / 100.0, 2)        AS start_mrr,
       round(coalesce(m.churn_cents, 0) / 100.0, 2)        AS churned_mrr,
       round(coalesce(m.contraction_cents, 0) / 100.0, 2)  AS contraction_mrr,
       round(coalesce(m.expansion_cents, 0) / 100.0, 2)    AS expansion_mrr,
       round(coalesce(m.reactivation_cents, 0) / 100.0, 2) AS reactivation_mrr,
       round((m.churn_cents + m.contraction_cents) / nullif(m.start_cents, 0), 4) AS gross_mrr_churn_rate,
       round((m.churn_cents + m.contraction_cents - m.expansion_cents - m.reactivation_cents)
             / nullif(m.start_cents, 0), 4)                                        AS net_mrr_churn_rate
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
