-- @mart mart_cohort_monthly
-- @unique cohort_month, month, country
-- @refresh 3-59/15 * * * *
-- @depends mart_mrr_monthly
-- Signup cohorts (see mart_mrr_monthly: the month of the customer's first payment). For every cohort and month:
-- cohort members paying at the end of the month and their MRR. Month 0 (the cohort month itself) is the cohort's
-- starting size and starting MRR; customers whose account predates the billing history have no month 0.
SELECT cohort_month, month, country,
       ((extract(year FROM month) - extract(year FROM cohort_month)) * 12
         + extract(month FROM month) - extract(month FROM cohort_month))::int AS months_since,
       sum(customers_end)::int AS customers_end,
       sum(end_cents)          AS end_cents
FROM mart_mrr_monthly
WHERE month >= cohort_month
GROUP BY cohort_month, month, country
