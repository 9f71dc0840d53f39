-- @title Past-due subscriptions
-- @description Live list of past_due subscriptions: the failed renewal, the next dunning retry and the amount at risk.
-- @definition Subscriptions in past_due now (a renewal failed; access continues while retries run on days 1, 3, 7 and 14
-- @definition after the due date; the fifth failed attempt cancels: involuntary churn). Next retry = the period start plus
-- @definition the day of the next attempt (a customer who adds a card is retried at once). Amount at risk = the renewal
-- @definition amount still unpaid; MRR at risk = the plan's monthly price. From the live tables, not a mart.
-- @roles admin manager analyst
-- @param plan multi lookup=plans label="Plans"
-- @chart bar x=next_retry:T y=amount_at_risk:Q color=plan_code:N title="Amount at risk by next retry"
-- @rowcap 5000
-- @pagesize 1000
-- @maxage 10
SELECT '/admin/subscribers/' || s.user_id                                          AS subscriber,
       (SELECT u.email FROM users u WHERE u.id = s.user_id) AS email,
       p.code                                                                  AS plan_code,
       s.current_period_start                                                  AS due_since,
       a.attempts,
       a.last_reason,
       CASE WHEN a.attempts < 5
            THEN greatest(s.current_period_start + make_interval(days => (ARRAY[1, 3, 7, 14])[a.attempts]), a.last_at) END AS next_retry,
       round(p.price_cents / 100.0, 2)                                         AS amount_at_risk,
       round(p.monthly_cents / 100.0, 2)                                       AS mrr_at_risk,
       (SELECT u.simulated FROM users u WHERE u.id = s.user_id) AS simulated
-- the customer's email is looked up per row shown (a page of 1,000 after the sort), not joined to every past-due
-- subscription: the join made PostgreSQL read all 1M users (a hash join, or parallel workers taking both cores) to
-- answer a page of 1,000 at 1M customers (README "Seventh round")
FROM subscriptions s
JOIN plans p ON p.id = s.plan_id
CROSS JOIN LATERAL (
  SELECT coalesce(max(pa.attempt), 1) AS attempts, max(pa.created_at) AS last_at,
         (array_agg(pa.failure_reason ORDER BY pa.attempt DESC))[1] AS last_reason
  FROM payments pa
  WHERE pa.subscription_id = s.id AND pa.kind = 'renewal' AND pa.period_start = s.current_period_start AND pa.status <> 'pending'
    -- a period's renewal attempts are charged at or after its start (attempt 1 at the period end that starts it,
    -- retries on days 1-14 or when a card is added, later: server/billing/machine.ts, jobs.ts, routes.ts and
    -- etl/simulator all stamp them so; 0 charges before their period start on the 1M-customer dataset): the bound lets
    -- the payments partitions before it be skipped instead of probed for every subscription (README "Partitions")
    AND pa.created_at >= s.current_period_start
) a
WHERE s.status = 'past_due'
  AND (:plan::text[] IS NULL OR p.code = ANY(:plan::text[]))
ORDER BY next_retry NULLS LAST, s.id
