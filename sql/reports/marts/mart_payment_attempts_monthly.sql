-- @mart mart_payment_attempts_monthly
-- @unique month, kind, plan_code, country
-- @refresh 6-59/15 * * * *
-- @incremental month 1 month
-- Charge attempts by the month their billing period starts (the due date) and payment kind: retries of a period run
-- up to 14 days into the next month, hence the month of lookback in the refresh window. A period's attempt 1
-- is its first attempt; a success (or a later-refunded success) on attempt >= 2 is a recovered failure, because
-- retries only happen after attempt 1 failed. plan_code: see mart_cash_monthly.
WITH price_plan AS (
  SELECT DISTINCT ON (price_cents) price_cents, code FROM plans ORDER BY price_cents, sort_order, id
)
SELECT date_trunc('month', p.period_start AT TIME ZONE 'UTC')::date AS month,
       p.kind,
       coalesce(pp.code,
         (SELECT pl.code FROM subscription_events e JOIN plans pl ON pl.id = e.plan_id
          WHERE e.subscription_id = p.subscription_id AND e.at <= p.created_at ORDER BY e.at DESC, e.id DESC LIMIT 1),
         (SELECT pl.code FROM subscriptions s JOIN plans pl ON pl.id = s.plan_id WHERE s.id = p.subscription_id)) AS plan_code,
       coalesce(u.country, '--') AS country,
       (count(*) FILTER (WHERE p.attempt = 1 AND p.status <> 'pending'))::int                       AS first_attempts,
       (count(*) FILTER (WHERE p.attempt = 1 AND p.status = 'failed'))::int                         AS first_attempt_failures,
       (count(*) FILTER (WHERE p.attempt > 1 AND p.status IN ('succeeded', 'refunded')))::int       AS recovered,
       (count(*) FILTER (WHERE p.status <> 'pending'))::int                                          AS attempts,
       (count(*) FILTER (WHERE p.status = 'failed'))::int                                            AS failed_attempts
FROM payments p
LEFT JOIN price_plan pp ON pp.price_cents = p.amount_cents AND p.kind IN ('initial', 'renewal')
JOIN users u ON u.id = p.user_id
WHERE p.period_start >= :since
GROUP BY 1, 2, 3, 4
