-- @mart mart_customer_mrr_monthly
-- @unique month, user_id
-- @refresh */15 * * * *
-- One row per customer and month in which the customer had MRR at the start or at the end of the month.
-- start_cents = the customer's MRR at the first instant of the month, end_cents = MRR at the first instant of the
-- next month (for the current month: at now()). MRR at an instant is, per the billing contract, the sum over the
-- customer's subscriptions of mrr_cents of the latest subscription_event at or before that instant.
-- movement follows DESIGN.md: new / reactivation (0 -> >0; reactivation when the customer had MRR > 0 at any
-- earlier instant), churn (>0 -> 0), expansion, contraction, retained. plan_code is the plan at the end of the
-- month, or at the start for a churned customer, so every row reconciles on its own under a plan filter.
-- Each event interval [at, next event) is expanded only over the month starts it covers (usually 0 or 1), so the
-- whole query is one ordered pass over subscription_events plus hash aggregates: no per-month rescans.
WITH iv AS (
  SELECT e.user_id, e.subscription_id, e.plan_id, e.to_status, e.mrr_cents, e.at,
         lead(e.at) OVER (PARTITION BY e.subscription_id ORDER BY e.at, e.id) AS next_at
  FROM subscription_events e
),
first_paid AS (
  SELECT user_id, min(at) AS first_paid_at FROM subscription_events WHERE mrr_cents > 0 GROUP BY user_id
),
first_month AS (
  SELECT date_trunc('month', min(at), 'UTC') AS m FROM subscription_events
),
-- MRR of each subscription at every month start it covers, and at now() (the "end" of the current month)
points AS (
  SELECT i.user_id, i.subscription_id, i.plan_id, i.to_status, i.mrr_cents, g.p, false AS is_now
  FROM iv i
  CROSS JOIN LATERAL generate_series(
    date_trunc('month', i.at - interval '1 microsecond', 'UTC') + interval '1 month',
    least(coalesce(i.next_at, 'infinity'::timestamptz) - interval '1 microsecond', now()),
    interval '1 month') AS g(p)
  WHERE i.mrr_cents > 0 AND i.at <= now()
  UNION ALL
  SELECT i.user_id, i.subscription_id, i.plan_id, i.to_status, i.mrr_cents, now(), true
  FROM iv i
  WHERE i.mrr_cents > 0 AND i.at <= now() AND (i.next_at IS NULL OR i.next_at > now())
),
-- a month start p is the start of month p and the end of the month before it; now() is the end of this month
roles AS (
  SELECT user_id, subscription_id, plan_id, to_status, p AS month_ts, mrr_cents AS s, 0::numeric AS e
  FROM points WHERE NOT is_now
  UNION ALL
  SELECT pt.user_id, pt.subscription_id, pt.plan_id, pt.to_status,
         CASE WHEN pt.is_now THEN date_trunc('month', pt.p, 'UTC') ELSE pt.p - interval '1 month' END,
         0::numeric, pt.mrr_cents
  FROM points pt, first_month fm
  WHERE pt.is_now OR pt.p > fm.m
),
per_customer AS (
  SELECT user_id, month_ts,
         sum(s) AS start_cents,
         sum(e) AS end_cents,
         max(plan_id) FILTER (WHERE s > 0) AS start_plan_id,
         max(plan_id) FILTER (WHERE e > 0) AS end_plan_id,
         max(subscription_id) FILTER (WHERE s > 0) AS start_subscription_id,
         coalesce(bool_or(to_status = 'past_due') FILTER (WHERE e > 0), false) AS end_past_due
  FROM roles
  GROUP BY user_id, month_ts
)
SELECT (pc.month_ts AT TIME ZONE 'UTC')::date AS month,
       pc.user_id,
       coalesce(u.country, '--') AS country,
       (date_trunc('month', fp.first_paid_at, 'UTC') AT TIME ZONE 'UTC')::date AS cohort_month,
       coalesce(pe.code, ps.code) AS plan_code,
       ps.code AS start_plan_code,
       pc.start_cents,
       pc.end_cents,
       pc.end_past_due,
       CASE
         WHEN pc.start_cents = 0 AND pc.end_cents > 0 THEN
           CASE WHEN fp.first_paid_at < pc.month_ts THEN 'reactivation' ELSE 'new' END
         WHEN pc.start_cents > 0 AND pc.end_cents = 0 THEN 'churn'
         WHEN pc.end_cents > pc.start_cents THEN 'expansion'
         WHEN pc.end_cents < pc.start_cents THEN 'contraction'
         ELSE 'retained'
       END AS movement,
       CASE WHEN pc.start_cents > 0 AND pc.end_cents = 0 THEN coalesce(s.end_reason, 'unknown') ELSE 'none' END AS churn_reason
FROM per_customer pc
JOIN users u ON u.id = pc.user_id
JOIN first_paid fp ON fp.user_id = pc.user_id
LEFT JOIN plans pe ON pe.id = pc.end_plan_id
LEFT JOIN plans ps ON ps.id = pc.start_plan_id
LEFT JOIN subscriptions s ON s.id = pc.start_subscription_id AND pc.start_cents > 0 AND pc.end_cents = 0
