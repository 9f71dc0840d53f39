-- @mart mart_mrr_balance_monthly
-- @unique month, plan_code, country
-- @refresh */15 * * * *
-- @depends mart_mrr_monthly
-- MRR, paying customers and past_due MRR at each month end by plan and country: mart_mrr_monthly summed over signup
-- cohorts, movements and churn reasons, which no balance question asks for. mrr_metrics_monthly() (the point-in-time
-- side of the reconciliation), plan_mix, mrr_at_risk and the MRR-at-risk tile sum it under their filters on every
-- request, so its size is their cost: tens of times fewer rows than mart_mrr_monthly at 1M customers.
SELECT month, plan_code, country,
       sum(customers_end)::int      AS customers_end,
       sum(end_cents)               AS end_cents,
       sum(past_due_customers)::int AS past_due_customers,
       sum(past_due_cents)          AS past_due_cents
FROM mart_mrr_monthly
GROUP BY month, plan_code, country
