-- @mart mart_cash_monthly
-- @unique month, plan_code, country
-- @refresh 8-59/15 * * * *
-- @incremental month
-- Cash, not MRR: money collected in the month a charge settled (succeeded, including charges refunded later) and
-- money returned in the month of the refund. Net cash revenue = collected - refunded.
-- payments carry no plan_id, so a charge's plan is the plan whose price equals the charge (initial and renewal
-- charges bill the full plan price at that time, so this is the plan billed even after a later plan change), and
-- for prorations or amounts matching no plan the subscription's plan when the charge was made (its latest event at
-- or before it: the plan upgraded to, for a proration). A charge's row never changes after its month closes.
-- Shape (as mart_payment_attempts_monthly): the cash rows are first summed by month, country and plan key (the price's
-- plan as -plan id, else the payment's own id, unique through payment_keys), hashed; only the groups of one payment
-- (prorations, amounts matching no plan) then look their plan up, from the charge's period start on (the latest event
-- at or before a charge is never before its period start: see mart_payment_attempts_monthly), and all is summed by plan.
-- Charges are grouped by UTC day (date_bin: integer arithmetic) and the month is computed per group: a month per
-- charge (date_trunc of the instant AT TIME ZONE 'UTC') cost ~1 s more of a 13-14 s full build at 1M customers.
WITH price_plan AS (
  SELECT DISTINCT ON (price_cents) price_cents, id FROM plans ORDER BY price_cents, sort_order, id
),
cash AS (
  SELECT date_bin('1 day', p.settled_at, TIMESTAMPTZ '1900-01-01 00:00:00+00') AS d, p.id, p.subscription_id, p.user_id, p.period_start,
         p.created_at, p.kind, p.amount_cents, p.amount_cents AS collected, 0 AS refunded, 1 AS charges, 0 AS refunds
  FROM payments p
  -- a charge settles at its created_at (the machine writes settled_at = created_at, also when a pending charge is
  -- settled later: server/billing/machine.ts payment(), store.ts settleIn; 0 charges otherwise on the 1M-customer
  -- dataset): the created_at bound lets an incremental refresh read only the payments partitions from :since on
  WHERE p.status IN ('succeeded', 'refunded') AND p.settled_at >= :since AND p.created_at >= :since
  UNION ALL
  SELECT date_bin('1 day', p.refunded_at, TIMESTAMPTZ '1900-01-01 00:00:00+00'), p.id, p.subscription_id, p.user_id, p.period_start,
         p.created_at, p.kind, p.amount_cents, 0, p.refund_cents, 0, 1
  FROM payments p
  WHERE p.status = 'refunded' AND p.refunded_at >= :since
),
grouped AS (
  SELECT c.d, u.country, coalesce(-pp.id, c.id) AS plan_key,
         min(c.subscription_id) AS subscription_id, min(c.period_start) AS period_start, min(c.created_at) AS created_at,
         sum(c.collected) AS collected, sum(c.refunded) AS refunded, sum(c.charges) AS charges, sum(c.refunds) AS refunds
  FROM cash c
  JOIN users u ON u.id = c.user_id
  LEFT JOIN price_plan pp ON pp.price_cents = c.amount_cents AND c.kind IN ('initial', 'renewal')
  GROUP BY 1, 2, 3
),
planned AS (
  SELECT date_trunc('month', g.d AT TIME ZONE 'UTC')::date AS m, g.country,
         CASE WHEN g.plan_key < 0 THEN -g.plan_key
              ELSE coalesce(
                (SELECT e.plan_id FROM subscription_events e
                 WHERE e.subscription_id = g.subscription_id AND e.at <= g.created_at AND e.at >= g.period_start
                 ORDER BY e.at DESC, e.id DESC LIMIT 1),
                (SELECT s.plan_id FROM subscriptions s WHERE s.id = g.subscription_id)) END AS plan_id,
         sum(g.collected) AS collected, sum(g.refunded) AS refunded, sum(g.charges) AS charges, sum(g.refunds) AS refunds
  FROM grouped g
  GROUP BY 1, 2, 3
)
SELECT pd.m AS month,
       pl.code AS plan_code,
       coalesce(pd.country, '--') AS country,
       pd.collected::bigint AS collected_cents,
       pd.refunded::bigint  AS refunded_cents,
       pd.charges::int      AS charges,
       pd.refunds::int      AS refunds
FROM planned pd
LEFT JOIN plans pl ON pl.id = pd.plan_id
