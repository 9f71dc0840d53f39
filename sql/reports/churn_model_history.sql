-- @title Churn model: training history
-- @description Every churn model trained: its AUC and PR-AUC beside the recency heuristic's on the same held-out cutoff.
-- @definition One point per model and measure (models are kept in churn_models with their seed, cutoffs, features and
-- @definition weights; the latest scores subscribers). Trained by npm run ml -- train and the weekly churn.train job.
-- @roles admin manager analyst
-- @param from date default=-1y label="Trained from"
-- @param to date default=today label="Trained to"
-- @chart line x=trained_at:T y=value:Q color=measure:N title="Held-out AUC and PR-AUC per model"
-- @rowcap 10000
-- @maxage 60
SELECT m.trained_at, m.id AS model_id, m.seed, x.measure, x.value, m.test_cutoff, (m.metrics ->> 'train_rows')::int AS training_rows
FROM churn_models m
CROSS JOIN LATERAL (VALUES
  ('model AUC', (m.metrics ->> 'auc')::float8),
  ('heuristic AUC', (m.metrics -> 'baseline' ->> 'auc')::float8),
  ('model PR-AUC', (m.metrics ->> 'pr_auc')::float8),
  ('heuristic PR-AUC', (m.metrics -> 'baseline' ->> 'pr_auc')::float8)
) AS x(measure, value)
WHERE m.trained_at >= :from AND m.trained_at < :to::date + 1
ORDER BY m.trained_at, m.id, x.measure
