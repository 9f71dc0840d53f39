-- @title MRR and ARR trend
-- @description Monthly recurring revenue and its annualized run rate at the end of each month.
-- @definition MRR is the sum of the monthly-normalized plan prices (annual plans ÷ 12) of subscriptions in active or
-- @definition past_due at the instant measured: the end of each month (for the current month, now: "so far"). Taxes
-- @definition and refunds are excluded. ARR = MRR × 12. Active customers: customers with MRR > 0 then.
-- @definition Under a plan filter a customer counts under the plan held at that instant.
-- @definition The month in progress is partial ("so far", partial = true) and the history's first month counts
-- @definition from the history start (opening); definitions: sql/schema/0013_metrics.sql, mrr_metrics_monthly().
-- @roles admin analyst manager
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
SELECT m.month, m.partial, m.period_note,
       round(m.end_cents / 100.0, 2)      AS mrr,
       round(m.end_cents * 12 / 100.0, 2) AS arr,
       m.customers_end::int               AS active_customers
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[]) m
ORDER BY m.month
