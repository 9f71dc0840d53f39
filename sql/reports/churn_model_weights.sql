-- @title Churn model: feature weights
-- @description What the latest churn model learned: the change in log-odds of churn per standard deviation of each feature.
-- @definition Logistic regression on standardized features (z = (value − training mean) ÷ training standard deviation):
-- @definition a positive weight raises the risk as the feature grows. The features are computed in SQL as of each
-- @definition cutoff (churn_features, migration 0019). From churn_models.
-- @roles admin manager analyst
-- @chart bar x=weight:Q y=feature:N title="Weight per standard deviation"
-- @rowcap 100
-- @maxage 60
SELECT f.feature, round(f.weight::numeric, 4) AS weight, round(f.mean::numeric, 3) AS training_mean,
       round(f.std::numeric, 3) AS training_std, m.id AS model_id
FROM (SELECT * FROM churn_models ORDER BY trained_at DESC, id DESC LIMIT 1) m
CROSS JOIN LATERAL unnest(m.features, m.weights, m.means, m.stds) AS f(feature, weight, mean, std)
ORDER BY abs(f.weight) DESC
