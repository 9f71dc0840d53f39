-- @title Net cash revenue by month and plan
-- @description Money collected minus money refunded, per month and plan.
-- @definition Cash, not MRR: collected = charges that succeeded in the month (including ones refunded later),
-- @definition refunded = refunds paid out in the month, net cash revenue = collected − refunded. Refunds never change
-- @definition MRR. A charge counts under the plan it billed: an initial or renewal charge under the plan whose price it
-- @definition is (the plan billed, even after a later plan change), a proration under the plan upgraded to.
-- @marts mart_cash_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param plan multi lookup=plans label="Plans"
-- @param country multi lookup=customer_countries label="Customer countries"
SELECT c.month, c.month = date_trunc('month', now())::date AS partial, c.plan_code,
       round(sum(c.collected_cents) / 100.0, 2) AS collected,
       round(sum(c.refunded_cents) / 100.0, 2)  AS refunded,
       round(sum(c.collected_cents - c.refunded_cents) / 100.0, 2) AS net_cash_revenue,
       sum(c.charges)::int AS charges,
       sum(c.refunds)::int AS refunds
FROM mart_cash_monthly c
JOIN plans p ON p.code = c.plan_code
WHERE c.month BETWEEN :from::date AND :to::date
  AND (:plan::text[] IS NULL OR c.plan_code = ANY(:plan::text[]))
  AND (:country::text[] IS NULL OR c.country = ANY(:country::text[]))
GROUP BY c.month, c.plan_code, p.sort_order
ORDER BY c.month, p.sort_order
