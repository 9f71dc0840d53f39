-- @title Subscribers at risk
-- @description Current subscribers most likely to cancel, why, and the MRR at stake, from the latest churn scoring.
-- @definition Risk = the latest churn model's probability that the subscriber has no paid access within 30 days after
-- @definition their current period ends (scored daily by the churn.score job, or npm run ml -- score). Reasons = the
-- @definition features that raise this subscriber's risk the most (largest positive contributions), in words. MRR at
-- @definition risk = risk × the subscription's MRR when scored. Highest MRR at risk first. The model, its figures and
-- @definition its calibration: the Churn model dashboard. From churn_scores (live SQL, not a mart).
-- @roles admin manager analyst
-- @param plan multi lookup=plans label="Plans"
-- @param top int min=1 max=10000 default=500 label="Subscribers shown"
-- @chart point x=risk:Q y=mrr_at_risk:Q color=plan_code:N title="Risk and MRR at risk per subscriber"
-- @rowcap 10000
-- @maxage 60
SELECT '/admin/subscribers/' || cs.user_id       AS subscriber,
       u.email,
       cs.plan_code,
       round(cs.risk::numeric, 4)                AS risk,
       array_to_string(cs.reasons, '; ')         AS reasons,
       round(cs.mrr_cents / 100.0, 2)            AS mrr,
       round(cs.risk::numeric * cs.mrr_cents / 100.0, 2) AS mrr_at_risk,
       cs.scored_at,
       cs.model_id
FROM churn_scores cs
JOIN users u ON u.id = cs.user_id
WHERE (:plan::text[] IS NULL OR cs.plan_code = ANY(:plan::text[]))
ORDER BY cs.risk * cs.mrr_cents DESC, cs.user_id
LIMIT :top
