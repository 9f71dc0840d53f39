-- @title Gross and net MRR churn
-- @description Share of the month's starting MRR lost to churn and contraction, before and after expansion and reactivation.
-- @definition Gross MRR churn = (churned MRR + contraction) ÷ MRR at month start (in the history's first month: at
-- @definition the history start). Net MRR churn = (churned MRR + contraction − expansion − reactivation) ÷ the same;
-- @definition negative net churn means the existing base grew. Movements as in the MRR movements report (events).
-- @definition No rates for the month in progress unless include_partial is set.
-- @definition Under a plan filter a movement counts under the plan held before it (churn, the old plan of a change)
-- @definition and after it (opening, new, reactivation, the new plan of a change); a plan change across the filter's
-- @definition edge is a transfer in / out, so each month starts where the month before ended. Country: the account's.
-- @definition The month in progress is partial ("so far", partial = true) and the history's first month counts
-- @definition from the history start (opening); definitions: sql/schema/0013_metrics.sql, mrr_metrics_monthly().
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @param include_partial boolean default=false label="Include the month in progress in ratios"
SELECT m.month, m.partial, m.period_note,
       round((m.start_cents + m.opening_cents) / 100.0, 2) AS start_mrr,
       round(m.churn_cents / 100.0, 2)        AS churned_mrr,
       round(m.contraction_cents / 100.0, 2)  AS contraction_mrr,
       round(m.expansion_cents / 100.0, 2)    AS expansion_mrr,
       round(m.reactivation_cents / 100.0, 2) AS reactivation_mrr,
       m.gross_mrr_churn_rate,
       m.net_mrr_churn_rate
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[], :include_partial::boolean) m
ORDER BY m.month
