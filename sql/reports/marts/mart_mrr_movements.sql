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
--
-- The events come in customer order (the planner merges the months' (user_id, at) indexes and sorts only each
-- customer's few events: by subscription for lag(), by time for the rest), then windows in that order: the change of each
-- subscription's MRR (lag), the customer's MRR after each event (a running sum) and the next event's instant (lead:
-- the last event of an instant holds the customer's state after it), then over those instants the state before
-- each (lag) and how many instants with MRR came before (reactivation or new). The opening balance is the last
-- instant at or before the history's start. No DISTINCT ON or second sort by customer, no separate pass for the
-- first paid instant; the churn reason is looked up per churn (the `canceled` event at that instant, through the
-- (user_id, at) index) rather than carrying every event's data through the sorts.
-- The running sums are framed ROWS UNBOUNDED PRECEDING: the same rows as the default RANGE frame (an event's (at, id)
-- and, after the instants are netted, a customer's at are unique within the customer, so no row has peers), without
-- looking for peers at every row (full build at 1M, one backend: 42.9-47.8 -> 38.1-38.6 s CPU, README "Seventh round").
-- The month of a movement is date_trunc of the instant AT TIME ZONE 'UTC': the three-argument date_trunc(…, 'UTC')
-- costs ~10× as much per row (26.6 s against 2.3 s over 21.6M values).
WITH bounds AS (
  -- without a simulated history the first event opens it, and nothing exists before it: no opening balance
  SELECT coalesce((SELECT min(window_start) FROM simulation_runs),
                  (SELECT min(at) - interval '1 microsecond' FROM subscription_events)) AS history_start
),
ev AS (
  SELECT e.user_id, e.at, e.id, e.plan_id,
         e.mrr_cents - coalesce(lag(e.mrr_cents) OVER (PARTITION BY e.user_id, e.subscription_id ORDER BY e.at, e.id), 0) AS delta
  FROM subscription_events e
  WHERE e.at <= now()
),
-- the customer's MRR after each event; the last event of an instant (next_at later) holds the state after the instant:
-- events of one instant net out (a subscription ending and the next one starting at the same instant is a plan
-- change, not a churn and a reactivation)
cust AS (
  SELECT user_id, at, plan_id,
         sum(delta) OVER w AS after_cents,
         lead(at) OVER w AS next_at
  FROM ev
  WINDOW w AS (PARTITION BY user_id ORDER BY at, id ROWS UNBOUNDED PRECEDING)
),
-- per instant: the state before it, and how many instants with MRR up to it (a second one means a reactivation)
steps AS (
  SELECT user_id, at, next_at, after_cents,
         CASE WHEN after_cents > 0 THEN plan_id END AS after_plan_id,
         coalesce(lag(after_cents) OVER w, 0) AS before_cents,
         lag(CASE WHEN after_cents > 0 THEN plan_id END) OVER w AS before_plan_id,
         count(*) FILTER (WHERE after_cents > 0) OVER w AS paid_instants
  FROM cust
  WHERE next_at IS DISTINCT FROM at
  WINDOW w AS (PARTITION BY user_id ORDER BY at ROWS UNBOUNDED PRECEDING)
),
-- opening: the state at the last instant at or before the history's start; after it, every instant that changes the
-- MRR or (with MRR on both sides) the plan
movements AS (
  SELECT s.user_id,
         CASE WHEN s.at <= b.history_start THEN date_trunc('month', b.history_start AT TIME ZONE 'UTC')::date
              ELSE date_trunc('month', (s.at - interval '1 microsecond') AT TIME ZONE 'UTC')::date END AS month,
         CASE WHEN s.at <= b.history_start THEN 'opening'
              WHEN s.before_cents = 0 THEN CASE WHEN s.paid_instants > 1 THEN 'reactivation' ELSE 'new' END
              WHEN s.after_cents = 0 THEN 'churn'
              WHEN s.after_cents >= s.before_cents THEN 'expansion'
              ELSE 'contraction' END AS movement,
         CASE WHEN s.at <= b.history_start THEN 0::numeric ELSE s.before_cents END AS before_cents,
         s.after_cents,
         CASE WHEN s.at <= b.history_start THEN NULL ELSE s.before_plan_id END AS before_plan_id,
         s.after_plan_id,
         CASE WHEN s.at > b.history_start AND s.before_cents > 0 AND s.after_cents = 0
              -- why a churn happened: the reason the `canceled` event of that instant carries (voluntary / involuntary)
              THEN coalesce((SELECT max(e.data ->> 'reason') FROM subscription_events e
                             WHERE e.user_id = s.user_id AND e.at = s.at AND e.type = 'canceled'), 'unknown')
              ELSE 'none' END AS churn_reason
  -- the history start as a value (an InitPlan), not a join: the filter then runs before the customers are joined
  FROM steps s CROSS JOIN (SELECT (SELECT history_start FROM bounds) AS history_start) b
  WHERE CASE WHEN s.at <= b.history_start
             THEN s.after_cents > 0 AND (s.next_at IS NULL OR s.next_at > b.history_start)
             ELSE s.after_cents <> s.before_cents
                  OR (s.after_cents > 0 AND s.before_cents > 0 AND s.after_plan_id IS DISTINCT FROM s.before_plan_id) END
),
by_country AS (
  SELECT m.month,
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
