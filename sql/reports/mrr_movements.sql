-- @title MRR movements
-- @description New, expansion, reactivation, contraction and churned MRR per month, reconciling start to end MRR.
-- @definition Per customer and month, start = MRR at the first instant of the month, end = MRR at the first instant
-- @definition of the next month (now, for the current month). New: start 0, end > 0, never paid before.
-- @definition Reactivation: start 0, end > 0, paid at some earlier time. Churn: start > 0, end 0 (counted when the
-- @definition paid period ends). Expansion / contraction: both > 0 and end above / below start.
-- @definition Check: end_mrr = start_mrr + new + expansion + reactivation − contraction − churn (reconciliation_gap 0).
-- @roles admin analyst manager
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
         sum(end_cents) AS end_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'new'), 0)          AS new_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'expansion'), 0)    AS expansion_cents,
         coalesce(sum(end_cents - start_cents) FILTER (WHERE movement = 'reactivation'), 0) AS reactivation_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'contraction'), 0)  AS contraction_cents,
         coalesce(sum(start_cents - end_cents) FILTER (WHERE movement = 'churn'), 0)        AS churn_cents
  FROM mart_mrr_monthly
  WHERE month BETWEEN :from::date AND :to::date
    AND (:plan::text[] IS NULL OR plan_code = ANY(:plan::text[]))
    AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
  GROUP BY month
)
SELECT months.month,
       round(coalesce(m.start_cents, 0) / 100.0, 2)        AS start_mrr,
       round(coalesce(m.new_cents, 0) / 100.0, 2)          AS new_mrr,
       round(coalesce(m.expansion_cents, 0) / 100.0, 2)    AS expansion_mrr,
       round(coalesce(m.reactivation_cents, 0) / 100.0, 2) AS reactivation_mrr,
       round(coalesce(m.contraction_cents, 0) / 100.0, 2)  AS contraction_mrr,
       round(coalesce(m.churn_cents, 0) / 100.0, 2)        AS churned_mrr,
       round(coalesce(m.end_cents, 0) / 100.0, 2)          AS end_mrr,
       round(coalesce(m.end_cents - m.start_cents, 0) / 100.0, 2) AS net_change,
       round(coalesce(m.end_cents - (m.start_cents + m.new_cents + m.expansion_cents + m.reactivation_cents
                                     - m.contraction_cents - m.churn_cents), 0) / 100.0, 2) AS reconciliation_gap
FROM months LEFT JOIN m USING (month)
ORDER BY months.month
