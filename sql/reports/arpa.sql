-- @title ARPA
-- @description Average MRR per active customer at the end of each month.
-- @definition ARPA = MRR ÷ active customers, both measured at the end of the month (for the current month, now: "so far").
-- @definition Under a plan filter a customer counts under the plan held at that instant.
-- @definition The month in progress is partial ("so far", partial = true) and the history's first month counts
-- @definition from the history start (opening); definitions: sql/schema/0013_metrics.sql, mrr_metrics_monthly().
-- @marts mart_mrr_movements mart_mrr_balance_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart line x=month:T y=arpa:Q title="ARPA (USD)"
SELECT m.month, m.partial, m.period_note,
       round(m.end_cents / 100.0, 2)      AS mrr,
       m.customers_end::int               AS active_customers,
       round(m.arpa_cents / 100.0, 2)     AS arpa
FROM mrr_metrics_monthly(:from::date, :to::date, :plan::text[], :country::text[]) m
ORDER BY m.month
