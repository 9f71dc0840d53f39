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
WITH price_plan AS (
  SELECT DISTINCT ON (price_cents) price_cents, code FROM plans ORDER BY price_cents, sort_order, id
),
cash AS (
  SELECT date_trunc('month', p.settled_at AT TIME ZONE 'UTC')::date AS m, p.subscription_id, p.user_id, p.created_at,
         p.kind, p.amount_cents, p.amount_cents AS collected, 0 AS refunded, 1 AS charges, 0 AS refunds
  FROM payments p
  WHERE p.status IN ('succeeded', 'refunded') AND p.settled_at >= :since
  UNION ALL
  SELECT date_trunc('month', p.refunded_at AT TIME ZONE 'UTC')::date, p.subscription_id, p.user_id, p.created_at,
         p.kind, p.amount_cents, 0, p.refund_cents, 0, 1
  FROM payments p
  WHERE p.status = 'refunded' AND p.refunded_at >= :since
)
SELECT c.m AS month,
       coalesce(pp.code,
         (SELECT pl.code FROM subscription_events e JOIN plans pl ON pl.id = e.plan_id
          WHERE e.subscription_id = c.subscription_id AND e.at <= c.created_at ORDER BY e.at DESC, e.id DESC LIMIT 1),
         (SELECT pl.code FROM subscriptions s JOIN plans pl ON pl.id = s.plan_id WHERE s.id = c.subscription_id)) AS plan_code,
       coalesce(u.country, '--') AS country,
       sum(c.collected)::bigint AS collected_cents,
       sum(c.refunded)::bigint  AS refunded_cents,
       sum(c.charges)::int      AS charges,
       sum(c.refunds)::int      AS refunds
FROM cash c
LEFT JOIN price_plan pp ON pp.price_cents = c.amount_cents AND c.kind IN ('initial', 'renewal')
JOIN users u ON u.id = c.user_id
GROUP BY 1, 2, 3
