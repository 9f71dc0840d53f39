-- @mart mart_signups_monthly
-- @unique month, plan_code, country
-- @refresh 10-59/15 * * * *
-- @incremental month
-- Customer acquisition by month: signups (subscriber accounts created) and first payments (the month of a
-- customer's first successful charge). plan_code is the plan the customer's first subscription started on (its
-- first event), if that subscription was created by the end of the row's month ('none' otherwise: a signup that has
-- not subscribed yet), so a row never changes after its month closes.
WITH
-- first successful charges from :since on: the customer's earliest, with none before :since
first_pay AS (
  SELECT p.user_id, min(p.settled_at) AS at FROM payments p
  WHERE p.status IN ('succeeded', 'refunded') AND p.settled_at >= :since
    AND NOT EXISTS (SELECT 1 FROM payments e WHERE e.user_id = p.user_id AND e.status IN ('succeeded', 'refunded') AND e.settled_at < :since)
  GROUP BY p.user_id
),
steps AS (
  SELECT date_trunc('month', u.created_at AT TIME ZONE 'UTC')::date AS m, u.id AS user_id, 1 AS signups, 0 AS first_payments
  FROM users u WHERE u.role = 'subscriber' AND u.created_at >= :since
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
LEFT JOIN LATERAL (
  SELECT e.plan_id FROM subscriptions s JOIN LATERAL (
    SELECT e.plan_id FROM subscription_events e WHERE e.subscription_id = s.id ORDER BY e.at, e.id LIMIT 1) e ON true
  WHERE s.user_id = st.user_id AND s.created_at < (st.m + interval '1 month') AT TIME ZONE 'UTC'
  ORDER BY s.created_at, s.id LIMIT 1
) fs ON true
LEFT JOIN plans pl ON pl.id = fs.plan_id
GROUP BY 1, 2, 3
