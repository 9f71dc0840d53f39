-- @mart mart_mrr_monthly
-- @unique month, plan_code, country, cohort_month, movement, churn_reason
-- @refresh */15 * * * *
-- @incremental month
-- @timeout 1800000
-- @planner enable_sort=off
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
-- The per-customer rows are not stored: at 1M customers they are ~10M rows. The work is one sort of the events by
-- customer, subscription and time; everything after it streams in customer order up to the final aggregate:
--   1. lead() gives each event its interval [at, next event of its subscription); in the same ordered pass a window
--      gives the customer's first paid instant (a separate pass over the events for it cost a second read and a hash
--      of 1M customers). The customers' country and creation are joined after the per-customer months are made: on
--      9.6M rows instead of 12.8M events, and the sort of the events is narrower (650 instead of 850 MB at 1M).
--   2. Months are numbered: month k starts at ms[k] (ms = the month starts from the first month to the first one after
--      now(), built once), so a paid interval covers months width_bucket(at - 1 µs) + 1 .. width_bucket(next - 1 µs)
--      (up to the month after now(), which stands for "now": the end of the current month). A binary search per event
--      and integers after it, instead of timestamp month arithmetic (date_trunc, + 1 month) on every point and row.
--   3. The customer's MRR at each month start is the sum over their subscriptions (a GroupAggregate on the points,
--      sorted within each customer only), then lag()/lead() over the customer's months give both edges of each month:
--      month k's row has start = MRR at month k and end = MRR at month k + 1 (0 if the customer has none then:
--      churn), and a month k without MRR before a month k + 1 with MRR is a row with start 0 (new / reactivation):
--      a constant two-row VALUES list joined to each month gives those two roles (a LATERAL VALUES list evaluated
--      per month cost ~70 s of a 165 s build at 1M).
--   4. One hash aggregate of the ~10M customer-months into the mart's ~16,000 rows, on integer months and plan ids: dates
--      and plan codes are looked up on its rows. PostgreSQL cannot estimate how few groups there are and would sort the
--      10M rows (an external sort of 560 MB, a fifth of the build) — hence @planner enable_sort=off, which leaves the
--      sorts the windows need (there is no other way to compute them) and hashes the aggregate: full build at 1M
--      customers, one backend, quiet machine, 65 → 51 s (47–50 s with the customers joined after step 3).
-- An incremental refresh (months from :since on) reads only each subscription that can have MRR at or after :since
-- (ended_at is the instant of its final, MRR-0 event): its state at :since (its latest event at or before it,
-- through the (subscription_id, at, id) index) and the events after :since; the first paid instant then comes from a
-- pass over all events (a full build gets it from the window).
WITH live AS (
  SELECT s.id FROM subscriptions s
  WHERE :since > '-infinity' AND (s.ended_at IS NULL OR s.ended_at >= :since)
),
ev AS (
  SELECT st.* FROM live l
  CROSS JOIN LATERAL (
    SELECT e.id, e.user_id, e.subscription_id, e.plan_id, e.to_status = 'past_due' AS past_due, e.mrr_cents, e.at
    FROM subscription_events e WHERE e.subscription_id = l.id AND e.at <= :since ORDER BY e.at DESC, e.id DESC LIMIT 1
  ) st
  UNION ALL
  SELECT e.id, e.user_id, e.subscription_id, e.plan_id, e.to_status = 'past_due', e.mrr_cents, e.at
  FROM subscription_events e WHERE e.at > :since
),
first_month AS (
  SELECT date_trunc('month', min(at), 'UTC') AS m FROM subscription_events
),
-- the month starts from the first month to the first one after now(): month k is ms[k]
months AS (
  SELECT ARRAY(SELECT generate_series(fm.m, date_trunc('month', now(), 'UTC') + interval '1 month', interval '1 month')) AS ms
  FROM first_month fm
),
-- per event: its subscription's interval and the months it covers (no rows when unpaid or covering no month start)
iv AS (
  SELECT e.user_id, e.subscription_id, e.plan_id, e.past_due, e.mrr_cents,
         min(e.at) FILTER (WHERE e.mrr_cents > 0 AND e.at <= now()) OVER (PARTITION BY e.user_id) AS first_paid_at,
         generate_series(
           CASE WHEN e.mrr_cents > 0 AND e.at <= now()
                THEN width_bucket(e.at - interval '1 microsecond', (SELECT ms FROM months)) + 1 END,
           CASE WHEN lead(e.at) OVER w IS NULL OR lead(e.at) OVER w > now() THEN cardinality((SELECT ms FROM months))
                ELSE width_bucket(lead(e.at) OVER w - interval '1 microsecond', (SELECT ms FROM months)) END) AS k
  FROM ev e
  WINDOW w AS (PARTITION BY e.user_id, e.subscription_id ORDER BY e.at, e.id)
),
-- per customer and month start: MRR (the sum over subscriptions), plan, subscription and past_due as the old roles had
cp AS (
  SELECT user_id, k, min(first_paid_at) AS first_paid_at,
         sum(mrr_cents) AS cents, max(plan_id) AS plan_id, max(subscription_id) AS subscription_id,
         bool_or(past_due) AS past_due
  FROM iv
  GROUP BY user_id, k
),
-- the customer's previous and next month with MRR
cpn AS (
  SELECT user_id, k, first_paid_at, cents, plan_id, subscription_id, past_due,
         lag(k) OVER u = k - 1 AS prev_adjacent,
         lead(k) OVER u = k + 1 AS next_adjacent,
         lead(cents) OVER u AS next_cents, lead(plan_id) OVER u AS next_plan_id, lead(past_due) OVER u AS next_past_due
  FROM cp
  WINDOW u AS (PARTITION BY user_id ORDER BY k)
),
-- incremental refresh only: the first paid instant over all the history (the window sees only the recent events)
first_paid AS (
  SELECT user_id, min(at) AS first_paid_at FROM subscription_events
  WHERE :since > '-infinity' AND mrr_cents > 0 AND at <= now() GROUP BY user_id
),
cm AS (
  SELECT c.user_id, c.k, u.country, c.cents, c.plan_id, c.subscription_id, c.past_due, c.prev_adjacent, c.next_adjacent,
         c.next_cents, c.next_plan_id, c.next_past_due,
         width_bucket(least(c.first_paid_at, fp.first_paid_at), (SELECT ms FROM months)) AS paid_k,
         u.created_at < (SELECT m FROM first_month) AS predates
  FROM cpn c
  JOIN users u ON u.id = c.user_id
  LEFT JOIN first_paid fp ON fp.user_id = c.user_id
),
-- role b = false: month k (start = MRR at k); b = true: month k - 1 when the customer had no MRR at its start
customer_months AS (
  SELECT CASE WHEN r.b THEN c.k - 1 ELSE c.k END AS month_k,
         CASE WHEN r.b THEN 0 ELSE c.cents END AS start_cents,
         CASE WHEN r.b THEN c.cents WHEN c.next_adjacent THEN c.next_cents ELSE 0 END AS end_cents,
         CASE WHEN NOT r.b AND c.next_adjacent THEN c.next_plan_id ELSE c.plan_id END AS plan_id,
         CASE WHEN r.b THEN c.past_due ELSE coalesce(c.next_adjacent AND c.next_past_due, false) END AS end_past_due,
         CASE WHEN r.b THEN CASE WHEN c.paid_k < c.k - 1 THEN 'reactivation' ELSE 'new' END
              WHEN NOT coalesce(c.next_adjacent, false) THEN 'churn'
              WHEN c.next_cents > c.cents THEN 'expansion'
              WHEN c.next_cents < c.cents THEN 'contraction'
              ELSE 'retained' END AS movement,
         CASE WHEN NOT r.b AND NOT coalesce(c.next_adjacent, false)
              THEN coalesce((SELECT s.end_reason FROM subscriptions s WHERE s.id = c.subscription_id), 'unknown')
              ELSE 'none' END AS churn_reason,
         coalesce(c.country, '--') AS country, CASE WHEN c.predates THEN 0 ELSE c.paid_k END AS cohort_k
  FROM cm c
  CROSS JOIN (VALUES (false), (true)) AS r(b)
  WHERE CASE WHEN r.b THEN NOT coalesce(c.prev_adjacent, false) AND c.k > 1 AND c.k > (SELECT width_bucket(:since, ms) FROM months)
             ELSE c.k < cardinality((SELECT ms FROM months)) AND c.k > (SELECT width_bucket(:since - interval '1 microsecond', ms) FROM months) END
),
grouped AS (
  SELECT month_k, plan_id, country, cohort_k, movement, churn_reason,
         count(*)::int                                           AS customers,
         (count(*) FILTER (WHERE start_cents > 0))::int          AS customers_start,
         (count(*) FILTER (WHERE end_cents > 0))::int            AS customers_end,
         sum(start_cents)                                        AS start_cents,
         sum(end_cents)                                          AS end_cents,
         (count(*) FILTER (WHERE end_past_due))::int             AS past_due_customers,
         coalesce(sum(end_cents) FILTER (WHERE end_past_due), 0) AS past_due_cents
  FROM customer_months
  GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT (mo.ms[g.month_k] AT TIME ZONE 'UTC')::date AS month,
       pl.code AS plan_code,
       g.country,
       (CASE WHEN g.cohort_k = 0 THEN mo.ms[1] - interval '1 month' ELSE mo.ms[g.cohort_k] END AT TIME ZONE 'UTC')::date AS cohort_month,
       g.movement, g.churn_reason, g.customers, g.customers_start, g.customers_end, g.start_cents, g.end_cents,
       g.past_due_customers, g.past_due_cents
FROM grouped g
CROSS JOIN months mo
JOIN plans pl ON pl.id = g.plan_id
