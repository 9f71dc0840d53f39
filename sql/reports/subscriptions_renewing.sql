-- @title Subscriptions renewing or ending soon
-- @description Live list of subscriptions whose current period ends in the next days: renewing, ending (cancel requested) or changing plan.
-- @definition Active subscriptions whose current period ends between now and now + the chosen number of days (7 or 30
-- @definition are the usual views), from the live subscriptions table (not a mart). At the period end the renewal job
-- @definition renews (charging the amount shown), ends the subscription (cancel requested: voluntary churn) or applies
-- @definition the scheduled downgrade and charges the new plan's price. Amounts in dollars.
-- @roles admin manager analyst
-- @param days int min=1 max=90 default=7 label="Days ahead"
-- @param plan multi lookup=plans label="Plans"
-- @chart point x=period_end:T y=amount:Q color=action:N title="Period ends ahead"
-- @rowcap 5000
-- @pagesize 1000
-- @maxage 10
SELECT '/admin/subscribers/' || s.user_id                                       AS subscriber,
       u.email,
       p.code                                                               AS plan_code,
       s.current_period_end                                                 AS period_end,
       CASE WHEN s.cancel_at_period_end THEN 'ends'
            WHEN s.pending_plan_id IS NOT NULL THEN 'changes plan'
            ELSE 'renews' END                                               AS action,
       CASE WHEN s.cancel_at_period_end THEN 0
            ELSE round(coalesce(pp.price_cents, p.price_cents) / 100.0, 2) END AS amount,
       pp.code                                                              AS next_plan_code,
       u.simulated
FROM subscriptions s
JOIN users u ON u.id = s.user_id
JOIN plans p ON p.id = s.plan_id
LEFT JOIN plans pp ON pp.id = s.pending_plan_id
WHERE s.status = 'active'
  AND s.current_period_end >= now() AND s.current_period_end < now() + make_interval(days => :days)
  AND (:plan::text[] IS NULL OR coalesce(pp.code, p.code) = ANY(:plan::text[]))
ORDER BY s.current_period_end, s.id
