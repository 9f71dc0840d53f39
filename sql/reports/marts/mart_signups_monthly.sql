-- @mart mart_signups_monthly
-- @unique month, plan_code, country
-- @refresh 10-59/15 * * * *
-- Customer acquisition by month: signups (subscriber accounts created) and first payments (the month of a
-- customer's first successful charge). plan_code is the plan of the customer's first subscription ('none' for a
-- signup that never subscribed).
WITH first_sub AS (
  SELECT DISTINCT ON (user_id) user_id, plan_id FROM subscriptions ORDER BY user_id, created_at, id
),
first_pay AS (
  SELECT user_id, min(settled_at) AS at FROM payments WHERE status IN ('succeeded', 'refunded') GROUP BY user_id
),
steps AS (
  SELECT date_trunc('month', u.created_at AT TIME ZONE 'UTC')::date AS m, u.id AS user_id, 1 AS signups, 0 AS first_payments
  FROM users u WHERE u.role = 'subscriber'
  UNION ALL
  SELECT date_trunc('month', fp.at AT TIME ZONE 'UTC')::date, fp.user_id, 0, 1 FROM first_pay fp
)
SELECT st.m AS month,
       coalesce(pl.code, 'none') AS plan_code,
       coalesce(u.country, '--') AS country,
       sum(st.signups)::int AS signups,
       sum(st.first_payments)::int AS first_payments
FROM steps st
JOIN users u ON u.id = st.user_id
LEFT JOIN first_sub fs ON fs.user_id = st.user_id
LEFT JOIN plans pl ON pl.id = fs.plan_id
GROUP BY 1, 2, 3
