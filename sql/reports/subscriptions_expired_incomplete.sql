-- @title Expired incomplete subscriptions
-- @description Live list of signups whose first payment never succeeded and that expired (23 hours after creation).
-- @definition Subscriptions that ended with reason expired: created (signup or reactivation), every first-payment
-- @definition attempt failed, and the expiry job canceled them 23 hours after creation. Attempts and the last failure
-- @definition reason come from the initial payments. Dates are the expiry instant (UTC). From the live tables, not a mart.
-- @roles admin manager analyst
-- @param from date default=-30d label="Expired from"
-- @param to date default=today label="Expired to"
-- @param plan multi lookup=plans label="Plans"
-- @chart point x=expired_at:T y=attempts:Q color=plan_code:N title="Expired signups"
-- @rowcap 5000
-- @pagesize 1000
-- @maxage 10
SELECT '/admin/subscribers/' || s.user_id                      AS subscriber,
       u.email,
       p.code                                              AS plan_code,
       s.created_at,
       s.ended_at                                          AS expired_at,
       coalesce(a.attempts, 0)                             AS attempts,
       a.last_reason,
       round(p.price_cents / 100.0, 2)                     AS amount,
       u.simulated
FROM subscriptions s
JOIN users u ON u.id = s.user_id
JOIN plans p ON p.id = s.plan_id
LEFT JOIN LATERAL (
  SELECT count(*)::int AS attempts, (array_agg(pa.failure_reason ORDER BY pa.attempt DESC))[1] AS last_reason
  FROM payments pa WHERE pa.subscription_id = s.id AND pa.kind = 'initial'
    -- the billing state machine (server/billing/machine.ts) charges a subscription only between its creation and its
    -- end: bounding created_at lets PostgreSQL skip the months of payments outside that span (one or two partitions
    -- instead of every month's index per subscription)
    AND pa.created_at >= s.created_at AND pa.created_at <= s.ended_at
) a ON true
WHERE s.status = 'canceled' AND s.end_reason = 'expired'
  AND s.ended_at >= :from::date AND s.ended_at < :to::date + 1
  AND (:plan::text[] IS NULL OR p.code = ANY(:plan::text[]))
ORDER BY s.ended_at DESC, s.id
