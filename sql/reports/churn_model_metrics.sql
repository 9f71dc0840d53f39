-- @title Churn model: evaluation
-- @description AUC and PR-AUC of the latest churn model on its held-out cutoff, beside the recency-only heuristic.
-- @definition The model is trained on four earlier cutoffs and evaluated on a later one whose labels it never saw
-- @definition (time-based split). AUC = the chance a churner scores above a non-churner (0.5 = guessing); PR-AUC =
-- @definition average precision (guessing scores the churn rate). The heuristic ranks subscribers by days since their
-- @definition last viewing. From churn_models (npm run ml -- train, or the weekly churn.train job).
-- @roles admin manager analyst
-- @rowcap 100
-- @maxage 60
SELECT m.id AS model_id, m.trained_at, x.scorer, x.metric, x.value, m.test_cutoff,
       (m.metrics ->> 'test_rows')::int AS test_subscribers, (m.metrics ->> 'test_positives')::int AS test_churned
FROM (SELECT * FROM churn_models ORDER BY trained_at DESC, id DESC LIMIT 1) m
CROSS JOIN LATERAL (VALUES
  ('model', 'AUC', (m.metrics ->> 'auc')::float8),
  ('recency heuristic', 'AUC', (m.metrics -> 'baseline' ->> 'auc')::float8),
  ('model', 'PR-AUC', (m.metrics ->> 'pr_auc')::float8),
  ('recency heuristic', 'PR-AUC', (m.metrics -> 'baseline' ->> 'pr_auc')::float8)
) AS x(scorer, metric, value)
