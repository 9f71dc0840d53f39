-- @mart mart_mrr_monthly
-- @unique month, plan_code, country, cohort_month, movement, churn_reason
-- @refresh */15 * * * *
-- @incremental month
-- @timeout 1800000
-- MRR by month × plan × country × signup cohort × movement × churn reason: the source of every MRR metric
-- (MRR, ARR, movements, churn, ARPA, LTV, quick ratio, NRR, cohorts, MRR at risk).
-- Its full rebuild at 1M customers took longer than the default 600 s statement timeout on the loaded shared machine
-- (README "Report engine", the reports benchmark), which cancelled it and the marts that read it: 30 minutes.
--
-- Per customer and month it first computes start = MRR at the first instant of the month and end = MRR at the first
-- instant of the next month (for the current month: now()), where MRR at an instant is, per the billing contract,
-- the sum over the customer's subscriptions of mrr_cents of the latest subscription_event at or before it. Then:
--   new           start 0, end > 0, never had MRR before the month    reactivation  start 0, end > 0, had MRR before
--   churn         start > 0, end 0                                   expansion / contraction / retained  both > 0
-- plan_code is the plan at the end of the month (at the start for a churned customer), so each row reconciles on its
-- own under a plan filter; cohort_month is the signup cohort: the month of the customer's first paid instant
-- (subscribing charges at once, so this is the month they signed up and paid). Customers whose account predates the
-- billing history (users.created_at before its first month) may have paid long before it, so they all get the month
-- before the first month: a cohort without a month 0, which the cohort reports leave out. churn_reason is the
-- end_reason of the subscription that ended (voluntary / involuntary), 'none' for other movements.
--
-- The per-customer rows are not stored: at 1M customers they are ~10M rows. Each event interval [at, next event) is
-- matched to the month starts it covers directly in the common case (a monthly renewal covers exactly one) and through
-- a join to the ~13 month starts otherwise, so the work is one ordered pass over subscription_events plus the
-- aggregates. An incremental refresh (months from :since on) reads only each subscription that can have MRR at or
-- after :since (ended_at is the instant of its final, MRR-0 event): its state at :since (its latest event at or
-- before it, through the (subscription_id, at, id) index) and the events after :since.
WITH live AS (
  SELECT s.id FROM subscriptions s
  WHERE :since > '-infinity' AND (s.ended_at IS NULL OR s.ended_at >= :since)
),
ev AS (
  SELECT st.* FROM live l
  CROSS JOIN LATERAL (
    SELECT e.id, e.user_id, e.subscription_id, e.plan_id, e.to_status, e.mrr_cents, e.at
    FROM subscription_events e WHERE e.subscription_id = l.id AND e.at <= :since ORDER BY e.at DESC, e.id DESC LIMIT 1
  ) st
  UNION ALL
  SELECT e.id, e.user_id, e.subscription_id, e.plan_id, e.to_status, e.mrr_cents, e.at
  FROM subscription_events e WHERE e.at > :since
),
iv AS (
  SELECT e.user_id, e.subscription_id, e.plan_id, e.to_status = 'past_due' AS past_due, e.mrr_cents, e.at,
         coalesce(lead(e.at) OVER (PARTITION BY e.subscription_id ORDER BY e.at, e.id), 'infinity') AS next_at
  FROM ev e
),
paid AS (
  SELECT user_id, subscription_id, plan_id, past_due, mrr_cents, at, next_at,
         date_trunc('month', at - interval '1 microsecond', 'UTC') + interval '1 month' AS first_start
  FROM iv
  WHERE mrr_cents > 0 AND at <= now()
),
first_month AS (
  SELECT date_trunc('month', min(at), 'UTC') AS m FROM subscription_events
),
month_starts AS (
  -- no billing history yet: no month starts (greatest() would skip the NULL and start the series at -infinity)
  SELECT g.p FROM first_month fm,
    generate_series(CASE WHEN fm.m IS NOT NULL THEN greatest(fm.m, date_trunc('month', :since, 'UTC')) END, now(), interval '1 month') AS g(p)
),
-- the subscription's MRR at each month start p it covers, and at now() (the "end" of the current month)
points AS (
  SELECT user_id, subscription_id, plan_id, past_due, mrr_cents, first_start AS p, false AS is_now
  FROM paid
  WHERE first_start < next_at AND first_start <= now()
  UNION ALL
  -- intervals spanning more than one month start (no event for over a month: open-ended or long periods)
  SELECT pd.user_id, pd.subscription_id, pd.plan_id, pd.past_due, pd.mrr_cents, ms.p, false
  FROM paid pd
  JOIN month_starts ms ON ms.p > pd.first_start AND ms.p < pd.next_at
  WHERE pd.first_start + interval '1 month' < pd.next_at AND pd.first_start + interval '1 month' <= now()
  UNION ALL
  SELECT user_id, subscription_id, plan_id, past_due, mrr_cents, now(), true
  FROM paid
  WHERE next_at > now()
),
-- a month start p is the start of month p and the end of the month before it; now() is the end of this month (one pass
-- over points emits both roles)
roles AS (
  SELECT pt.user_id, pt.subscription_id, pt.plan_id, pt.past_due, r.month_ts, r.s, r.e
  FROM points pt
  CROSS JOIN first_month fm
  CROSS JOIN LATERAL (VALUES
    (pt.p, pt.mrr_cents, 0::numeric, NOT pt.is_now AND pt.p >= :since),
    (CASE WHEN pt.is_now THEN date_trunc('month', pt.p, 'UTC') ELSE pt.p - interval '1 month' END, 0::numeric, pt.mrr_cents,
     (pt.is_now OR pt.p > fm.m) AND pt.p > :since)
  ) AS r(month_ts, s, e, keep)
  WHERE r.keep
),
-- per customer: first paid instant (one parallel pass over the events with a hash aggregate: cheaper than a lookup per
-- customer of a window, which costs a random heap read each), country and account creation.
first_paid AS (
  SELECT user_id, min(at) AS first_paid_at FROM subscription_events WHERE mrr_cents > 0 AND at <= now() GROUP BY user_id
),
-- The customer's attributes join the role rows before the per-customer aggregate: the planner cannot estimate how many
-- customer-months that aggregate yields (it guessed 40,000 for ~10M at 1M customers) and, joining after it, hashed the
-- ~10M aggregate rows as if they were few. Joined before, it hashes the customers and streams the role rows through.
per_customer AS (
  SELECT r.user_id, r.month_ts, fp.first_paid_at, u.country, u.created_at,
         sum(r.s) AS start_cents,
         sum(r.e) AS end_cents,
         max(r.plan_id) FILTER (WHERE r.s > 0) AS start_plan_id,
         max(r.plan_id) FILTER (WHERE r.e > 0) AS end_plan_id,
         max(r.subscription_id) FILTER (WHERE r.s > 0) AS start_subscription_id,
         coalesce(bool_or(r.past_due) FILTER (WHERE r.e > 0), false) AS end_past_due
  FROM roles r
  JOIN first_paid fp ON fp.user_id = r.user_id
  JOIN users u ON u.id = r.user_id
  GROUP BY r.user_id, r.month_ts, fp.first_paid_at, u.country, u.created_at
),
classified AS (
  SELECT pc.month_ts, pc.user_id, pc.start_cents, pc.end_cents, pc.end_past_due, pc.start_subscription_id,
         coalesce(pc.end_plan_id, pc.start_plan_id) AS plan_id,
         pc.first_paid_at, pc.country, pc.created_at,
         CASE
           WHEN pc.start_cents = 0 AND pc.end_cents > 0 THEN
             CASE WHEN pc.first_paid_at < pc.month_ts THEN 'reactivation' ELSE 'new' END
           WHEN pc.start_cents > 0 AND pc.end_cents = 0 THEN 'churn'
           WHEN pc.end_cents > pc.start_cents THEN 'expansion'
           WHEN pc.end_cents < pc.start_cents THEN 'contraction'
           ELSE 'retained'
         END AS movement
  FROM per_customer pc
)
SELECT (c.month_ts AT TIME ZONE 'UTC')::date AS month,
       pl.code AS plan_code,
       coalesce(c.country, '--') AS country,
       (CASE WHEN c.created_at < fm.m THEN fm.m - interval '1 month'
             ELSE date_trunc('month', c.first_paid_at, 'UTC') END AT TIME ZONE 'UTC')::date AS cohort_month,
       c.movement,
       CASE WHEN c.movement = 'churn'
            THEN coalesce((SELECT s.end_reason FROM subscriptions s WHERE s.id = c.start_subscription_id), 'unknown')
            ELSE 'none' END AS churn_reason,
       count(*)::int                                           AS customers,
       (count(*) FILTER (WHERE c.start_cents > 0))::int        AS customers_start,
       (count(*) FILTER (WHERE c.end_cents > 0))::int          AS customers_end,
       sum(c.start_cents)                                      AS start_cents,
       sum(c.end_cents)                                        AS end_cents,
       (count(*) FILTER (WHERE c.end_past_due))::int           AS past_due_customers,
       coalesce(sum(c.end_cents) FILTER (WHERE c.end_past_due), 0) AS past_due_cents
FROM classified c
CROSS JOIN first_month fm
JOIN plans pl ON pl.id = c.plan_id
GROUP BY 1, 2, 3, 4, 5, 6
