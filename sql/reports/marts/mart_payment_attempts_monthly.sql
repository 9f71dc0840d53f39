-- @mart mart_payment_attempts_monthly
-- @unique month, kind, plan_code, country
-- @refresh 6-59/15 * * * *
-- @incremental month 1 month
-- Charge attempts by the month their billing period starts (the due date) and payment kind: retries of a period run
-- up to 14 days into the next month, hence the month of lookback in the refresh window. A period's attempt 1
-- is its first attempt; a success (or a later-refunded success) on attempt >= 2 is a recovered failure, because
-- retries only happen after attempt 1 failed. plan_code: see mart_cash_monthly.
-- Shape (one pass over payments, no lookup per charge): the charges are first counted by month, kind, country and
-- plan key: the price's plan for an initial or renewal charge at a plan's price (-plan id), else the payment itself
-- (its id: payment_keys keeps payment ids unique), so only those few groups (prorations, amounts matching no plan)
-- look their plan up, then everything is summed by plan. The OFFSET 0 keeps the per-charge rows a subquery, so the
-- planner estimates its groups as few and hashes them (grouping the raw month expression it expects one group per
-- charge, sorts 10 M rows and spills); the lookup comes after that aggregate because its estimated cost, charged to
-- every row, would make a sort look as cheap as the hash. The lookup reads only the partitions from the charge's
-- period start on: the machine (server/billing/machine.ts, which both live billing and etl/simulator drive) writes an
-- event at every charge's instant, except a failed first payment, whose period starts at the subscription's creation
-- and its 'created' event, so the latest event at or before a charge is never before its period start (0 charges
-- without one on the 1M-customer dataset). test/fixtures/metrics/builder.ts writes the same.
-- Charges are grouped by UTC day (date_bin: integer arithmetic) and the month is computed per group: a month per
-- charge (date_trunc of the instant AT TIME ZONE 'UTC') cost ~1 s more of a 13-14 s full build at 1M customers.
WITH price_plan AS (
  SELECT DISTINCT ON (price_cents) price_cents, id FROM plans ORDER BY price_cents, sort_order, id
),
charges AS (
  SELECT date_bin('1 day', p.period_start, TIMESTAMPTZ '1900-01-01 00:00:00+00') AS day, p.kind, u.country,
         coalesce(-pp.id, p.id) AS plan_key, p.subscription_id, p.period_start, p.created_at, p.attempt, p.status
  FROM payments p
  JOIN users u ON u.id = p.user_id
  LEFT JOIN price_plan pp ON pp.price_cents = p.amount_cents AND p.kind IN ('initial', 'renewal')
  -- created_at >= period_start for every charge (the machine charges a period at or after its start; 0 charges before
  -- theirs on the 1M-customer dataset): an incremental refresh reads only the payments partitions from :since on
  WHERE p.period_start >= :since AND p.created_at >= :since
  OFFSET 0
),
grouped AS (
  SELECT c.day, c.kind, c.country, c.plan_key,
         min(c.subscription_id) AS subscription_id, min(c.period_start) AS period_start, min(c.created_at) AS created_at,
         count(*) FILTER (WHERE c.attempt = 1 AND c.status <> 'pending')                AS first_attempts,
         count(*) FILTER (WHERE c.attempt = 1 AND c.status = 'failed')                  AS first_attempt_failures,
         count(*) FILTER (WHERE c.attempt > 1 AND c.status IN ('succeeded', 'refunded')) AS recovered,
         count(*) FILTER (WHERE c.status <> 'pending')                                   AS attempts,
         count(*) FILTER (WHERE c.status = 'failed')                                     AS failed_attempts
  FROM charges c
  GROUP BY 1, 2, 3, 4
),
planned AS (
  SELECT date_trunc('month', g.day AT TIME ZONE 'UTC')::date AS month, g.kind, g.country,
         CASE WHEN g.plan_key < 0 THEN -g.plan_key
              ELSE coalesce(
                -- the subscription's latest event at or before the charge (bounded below by the period start: above)
                (SELECT e.plan_id FROM subscription_events e
                 WHERE e.subscription_id = g.subscription_id AND e.at <= g.created_at AND e.at >= g.period_start
                 ORDER BY e.at DESC, e.id DESC LIMIT 1),
                (SELECT s.plan_id FROM subscriptions s WHERE s.id = g.subscription_id)) END AS plan_id,
         sum(g.first_attempts) AS first_attempts, sum(g.first_attempt_failures) AS first_attempt_failures,
         sum(g.recovered) AS recovered, sum(g.attempts) AS attempts, sum(g.failed_attempts) AS failed_attempts
  FROM grouped g
  GROUP BY 1, 2, 3, 4
)
SELECT pd.month,
       pd.kind,
       pl.code AS plan_code,
       coalesce(pd.country, '--') AS country,
       pd.first_attempts::int         AS first_attempts,
       pd.first_attempt_failures::int AS first_attempt_failures,
       pd.recovered::int              AS recovered,
       pd.attempts::int               AS attempts,
       pd.failed_attempts::int        AS failed_attempts
FROM planned pd
LEFT JOIN plans pl ON pl.id = pd.plan_id
