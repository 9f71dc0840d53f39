-- @mart mart_mrr_monthly
-- @unique month, plan_code, country, movement, churn_reason
-- @refresh 2-59/15 * * * *
-- @depends mart_customer_mrr_monthly
-- The per-customer monthly MRR rolled up to the dimensions reports filter on (a few thousand rows), so MRR,
-- movements, churn, ARPA, LTV and quick-ratio reports are small aggregates over this table.
SELECT month, plan_code, country, movement, churn_reason,
       count(*)::int                                        AS customers,
       (count(*) FILTER (WHERE start_cents > 0))::int       AS customers_start,
       (count(*) FILTER (WHERE end_cents > 0))::int         AS customers_end,
       sum(start_cents)                                     AS start_cents,
       sum(end_cents)                                       AS end_cents,
       (count(*) FILTER (WHERE end_past_due))::int          AS past_due_customers,
       coalesce(sum(end_cents) FILTER (WHERE end_past_due), 0) AS past_due_cents
FROM mart_customer_mrr_monthly
GROUP BY month, plan_code, country, movement, churn_reason
