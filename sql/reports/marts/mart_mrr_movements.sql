-- @mart mart_mrr_movements
-- @unique month, movement, from_plan, to_plan, country, churn_reason
-- @refresh */15 * * * *
-- @index country
-- MRR movements counted as events (DESIGN.md "MRR movements"; README "Metrics: reports and marts"): every change of a customer's MRR is one
-- movement in the month it happens, so a customer who churns on the 3rd and comes back on the 20th is one churn and
-- one reactivation of that month. The rows are the input of the one definition of every MRR metric, the SQL function
-- mrr_metrics_monthly() (sql/schema/0013_metrics.sql), which every MRR report and KPI tile reads.
--
-- A customer's MRR at an instant is, per the billing contract, the sum over their subscriptions of mrr_cents of the
-- latest event at or before it; it changes only at an event. Each event that changes it (or moves the customer to
-- another plan) is a movement with the customer's MRR and plan before (from_plan) and after (to_plan) it:
--   opening       MRR the customer held at the instant the history starts (history_start below): one per customer
--   new           0 → > 0, the customer's first paid instant       reactivation  0 → > 0, paid at some earlier time
--   churn         > 0 → 0 (counted when the paid period ends; churn_reason = the `canceled` event's data.reason)
--   expansion     > 0 → more (or a plan switch at the same price)  contraction   > 0 → less
-- The history starts at the window start of the first simulation run (simulation_runs), else at the first billing
-- event: MRR that exists then is `opening`, never `new`; events before it are not movements. Live billing adds events
-- after it, which are ordinary movements. An event at a month's first instant belongs to the month before (MRR "at the
-- end of a month" is MRR at the next month's first instant, which includes it).
-- country is the account's country (users.country: a customer never changes country).
-- Small: one row per kind of movement, not per customer (the per-event rows exist only inside the refresh), and no
-- signup cohort (no question of the movements asks for one; cohorts come from mart_mrr_monthly): every report reading
-- mrr_metrics_monthly() sums the mart's rows under its filters, so their number is each report's cost. Hence the
-- rows summed over every country too (country '*', no customer's country): a request without a country filter sums
-- those, one with a country filter its countries' rows (the country index).
WITH bounds AS (
  -- without a simulated history the first event opens it, and nothing exists before it: no opening balance
  SELECT coalesce((SELECT min(window_start) FROM simulation_runs),
                  (SELECT min(at) - interval '1 microsecond' FROM subscription_events)) AS history_start
),
ev AS (
  SELECT e.user_id, e.at, e.id, e.plan_id, e.type, e.data,
         e.mrr_cents - coalesce(lag(e.mrr_cents) OVER (PARTITION BY e.subscription_id ORDER BY e.at, e.id), 0) AS delta
  FROM subscription_events e
  WHERE e.at <= now()
),
cust AS (
  SELECT user_id, at, id, plan_id, sum(delta) OVER (PARTITION BY user_id ORDER BY at, id) AS after_cents,
         -- why a churn happened: the reason the `canceled` event carries (voluntary / involuntary)
         max(data ->> 'reason') FILTER (WHERE type = 'canceled') OVER (PARTITION BY user_id, at) AS reason
  FROM ev
),
-- the customer's state after each instant: events of one instant net out (a subscription ending and the next one
-- starting at the same instant is a plan change, not a churn and a reactivation)
inst AS (
  SELECT DISTINCT ON (user_id, at) user_id, at, id, reason, after_cents,
         CASE WHEN after_cents > 0 THEN plan_id END AS after_plan_id
  FROM cust
  ORDER BY user_id, at, id DESC
),
steps AS (
  SELECT user_id, at, id, reason, after_cents, after_plan_id,
         coalesce(lag(after_cents) OVER w, 0) AS before_cents,
         lag(after_plan_id) OVER w AS before_plan_id
  FROM inst
  WINDOW w AS (PARTITION BY user_id ORDER BY at)
),
changes AS (
  SELECT s.* FROM steps s
  WHERE s.after_cents <> s.before_cents
     OR (s.after_cents > 0 AND s.before_cents > 0 AND s.after_plan_id IS DISTINCT FROM s.before_plan_id)
),
first_paid AS (
  SELECT user_id, min(at) AS first_paid_at FROM changes WHERE after_cents > 0 GROUP BY user_id
),
opening AS (
  -- the customer's state at the history's start instant: their last change at or before it
  SELECT DISTINCT ON (c.user_id) c.user_id, c.after_cents, c.after_plan_id
  FROM changes c, bounds b
  WHERE c.at <= b.history_start
  ORDER BY c.user_id, c.at DESC, c.id DESC
),
movements AS (
  SELECT o.user_id, date_trunc('month', b.history_start, 'UTC') AS month_ts, 'opening' AS movement,
         0::numeric AS before_cents, o.after_cents, NULL::integer AS before_plan_id, o.after_plan_id, 'none' AS churn_reason
  FROM opening o, bounds b
  WHERE o.after_cents > 0
  UNION ALL
  SELECT c.user_id, date_trunc('month', c.at - interval '1 microsecond', 'UTC'),
         CASE WHEN c.before_cents = 0 THEN CASE WHEN fp.first_paid_at < c.at THEN 'reactivation' ELSE 'new' END
              WHEN c.after_cents = 0 THEN 'churn'
              WHEN c.after_cents >= c.before_cents THEN 'expansion'
              ELSE 'contraction' END,
         c.before_cents, c.after_cents, c.before_plan_id, c.after_plan_id,
         CASE WHEN c.before_cents > 0 AND c.after_cents = 0
              THEN coalesce(c.reason, 'unknown') ELSE 'none' END
  FROM changes c
  JOIN first_paid fp ON fp.user_id = c.user_id
  CROSS JOIN bounds b
  WHERE c.at > b.history_start
),
by_country AS (
  SELECT (m.month_ts AT TIME ZONE 'UTC')::date AS month,
         m.movement,
         coalesce(fpl.code, 'none') AS from_plan,
         coalesce(tpl.code, 'none') AS to_plan,
         coalesce(u.country, '--') AS country,
         m.churn_reason,
         count(*)::int          AS events,
         sum(m.before_cents)    AS before_cents,
         sum(m.after_cents)     AS after_cents,
         min(b.history_start)   AS history_start
  FROM movements m
  CROSS JOIN bounds b
  JOIN users u ON u.id = m.user_id
  LEFT JOIN plans fpl ON fpl.id = m.before_plan_id
  LEFT JOIN plans tpl ON tpl.id = m.after_plan_id
  GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT * FROM by_country
UNION ALL
SELECT month, movement, from_plan, to_plan, '*', churn_reason, sum(events)::int, sum(before_cents), sum(after_cents), min(history_start)
FROM by_country
GROUP BY month, movement, from_plan, to_plan, churn_reason
