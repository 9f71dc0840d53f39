-- @title Customer lifetime value
-- @description Expected revenue per customer: ARPA divided by the monthly customer churn rate.
-- @definition LTV = ARPA ÷ monthly customer churn rate, with ARPA = MRR ÷ active customers at month end and churn
-- @definition rate as in the Customer churn rate report (churn events ÷ customers at the start). Empty in a month
-- @definition without churn, and for the month in progress unless include_partial is set.
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
-- @chart line x=month:T y=ltv:Q title="LTV (USD)"
SELECT m.month, m.partial, m.period_note,
       round(m.arpa_cents / 100.0, 2) AS arpa,
       m.customer_churn_rate,
       round(m.ltv_cents / 100.0, 2)  AS ltv
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[], :include_partial::boolean) m
ORDER BY m.month
