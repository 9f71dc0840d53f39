-- @title Customer churn rate
-- @description Monthly customer churn, gross and net of reactivations, split voluntary / involuntary.
-- @definition Churn rate = churn events in the month (a customer's last subscription ending, counted when the paid
-- @definition period ends) ÷ customers at the month start (in the history's first month: at the history start).
-- @definition A customer who churns and returns within the month counts as churned and as reactivated. Voluntary:
-- @definition canceled at period end on request; involuntary: payment retries ran out. Net churn rate = (churned −
-- @definition reactivated) ÷ customers at the start. The month in progress shows its counts but no rates unless
-- @definition include_partial is set.
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
       (m.customers_start + m.opening_customers)::int AS customers_at_start,
       m.churned_customers::int    AS churned,
       m.voluntary_churned::int    AS voluntary_churned,
       m.involuntary_churned::int  AS involuntary_churned,
       m.reactivated_customers::int AS reactivated,
       m.customer_churn_rate       AS churn_rate,
       m.voluntary_churn_rate,
       m.involuntary_churn_rate,
       m.net_customer_churn_rate   AS net_churn_rate
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[], :include_partial::boolean) m
ORDER BY m.month
