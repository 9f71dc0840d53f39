-- @title SaaS quick ratio
-- @description MRR gained per dollar of MRR lost, month by month.
-- @definition Quick ratio = (new + expansion + reactivation MRR) ÷ (contraction + churned MRR), movements as events
-- @definition (MRR movements report). Above 1 the base grows; empty in a month that lost no MRR, and for the month in
-- @definition progress unless include_partial is set. Opening MRR and transfers are not gains.
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
-- @chart line x=month:T y=quick_ratio:Q title="Quick ratio"
SELECT m.month, m.partial, m.period_note,
       round((m.new_cents + m.expansion_cents + m.reactivation_cents) / 100.0, 2) AS gained_mrr,
       round((m.contraction_cents + m.churn_cents) / 100.0, 2) AS lost_mrr,
       m.quick_ratio
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[], :include_partial::boolean) m
ORDER BY m.month
