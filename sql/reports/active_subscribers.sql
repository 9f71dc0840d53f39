-- @title Active subscribers
-- @description Customers with a paying subscription at the end of each month, and how many of them are past due.
-- @definition Active subscribers: customers with at least one subscription in active or past_due at the end of the
-- @definition month (for the current month, now: "so far"). past_due customers keep access while payment retries run.
-- @definition Under a plan filter a customer counts under the plan held at that instant.
-- @definition The month in progress is partial ("so far", partial = true) and the history's first month counts
-- @definition from the history start (opening); definitions: sql/schema/0013_metrics.sql, mrr_metrics_monthly().
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart line x=month:T y=active_subscribers:Q title="Active subscribers"
SELECT m.month, m.partial, m.period_note,
       m.customers_end::int AS active_subscribers,
       coalesce((SELECT sum(mm.past_due_customers) FROM mart_mrr_balance_monthly mm
                 WHERE mm.month = m.month AND (:plan::text[] IS NULL OR mm.plan_code = ANY(:plan::text[]))
                   AND (:country::text[] IS NULL OR mm.country = ANY(:country::text[]))), 0)::int AS past_due_subscribers
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[]) m
ORDER BY m.month
