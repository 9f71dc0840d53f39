-- @mart mart_signups_monthly
-- @unique month, plan_code, country
-- @refresh 10-59/15 * * * *
-- @incremental month
-- Customer acquisition by month: signups (subscriber accounts created) and first payments (the month of a
-- customer's first successful charge). plan_code is the plan the customer's first subscription started on (its
-- first event), if that subscription was created by the end of the row's month ('none' otherwise: a signup that has
-- not subscribed yet), so a row never changes after its month closes.
-- Shape: one hash aggregate of the successful charges per customer (the first, kept when on or after :since), and
-- each customer's first subscription found once (DISTINCT ON over subscriptions in customer order: the stepping
-- customers' only, in an incremental refresh), not once per step row: the step's month only decides whether it was
-- created by then. Its first event is the one at its created_at with the lowest id: a subscription's first event is
-- its 'created' event, written at creation by openSubscription (server/billing/machine.ts: live checkout and
-- etl/simulator both open subscriptions through it, and the machine refuses any later input dated before the
-- creation), so no event precedes created_at (on the 1M-customer dataset: 0 events before their subscription's
-- created_at, 0 subscriptions without an event at it; test/fixtures/metrics/builder.ts writes the same). The
-- equality prunes that lookup to the one month partition holding created_at (README "Partitions"); ordered by
-- (at, id) it probed every month from the oldest on.
WITH
-- each customer's first successful charge, when it is on or after :since
first_pay AS (
  SELECT p.user_id, min(p.settled_at) AS at FROM payments p
  WHERE p.status IN ('succeeded', 'refunded')
  GROUP BY p.user_id
  HAVING min(p.settled_at) >= :since
),
steps AS (
  SELECT date_trunc('month', u.created_at AT TIME ZONE 'UTC')::date AS m, u.id AS user_id, 1 AS signups, 0 AS first_payments
  FROM users u WHERE u.role = 'subscriber' AND u.created_at >= :since
  UNION ALL
  SELECT date_trunc('month', fp.at AT TIME ZONE 'UTC')::date, fp.user_id, 0, 1 FROM first_pay fp
),
-- each customer's first subscription (by created_at, id) and the plan of its first event
first_sub AS (
  SELECT fs.user_id, fs.created_at,
         (SELECT e.plan_id FROM subscription_events e WHERE e.subscription_id = fs.id AND e.at = fs.created_at
          ORDER BY e.id LIMIT 1) AS plan_id
  FROM (SELECT DISTINCT ON (s.user_id) s.user_id, s.id, s.created_at FROM subscriptions s
        WHERE :since = '-infinity' OR s.user_id IN (SELECT user_id FROM steps)
        ORDER BY s.user_id, s.created_at, s.id) fs
)
SELECT st.m AS month,
       coalesce(CASE WHEN fs.created_at < (st.m + interval '1 month') AT TIME ZONE 'UTC' THEN pl.code END, 'none') AS plan_code,
       coalesce(u.country, '--') AS country,
       sum(st.signups)::int AS signups,
       sum(st.first_payments)::int AS first_payments
FROM steps st
JOIN users u ON u.id = st.user_id
LEFT JOIN first_sub fs ON fs.user_id = st.user_id
LEFT JOIN plans pl ON pl.id = fs.plan_id
GROUP BY 1, 2, 3
