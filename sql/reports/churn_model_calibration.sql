-- @title Churn model: calibration
-- @description Predicted churn probability against the churn observed, by tenth of the held-out subscribers.
-- @definition The latest model's held-out subscribers are split into ten equal groups by predicted probability; each
-- @definition point is a group's mean prediction and its observed churn rate (on the diagonal = well calibrated). The
-- @definition recency heuristic, as a probability, is the training churn rate of the subscriber's tenth by days since
-- @definition the last viewing. From churn_models.
-- @roles admin manager analyst
-- @chart line x=predicted:Q y=observed:Q color=scorer:N title="Observed against predicted churn"
-- @rowcap 100
-- @maxage 60
WITH m AS (SELECT * FROM churn_models ORDER BY trained_at DESC, id DESC LIMIT 1),
bins AS (
  SELECT b.scorer, b.bin, b.n, round(b.predicted::numeric, 4) AS predicted, round(b.observed::numeric, 4) AS observed
  FROM m, jsonb_to_recordset(m.calibration) AS b(scorer text, bin int, n int, predicted float8, observed float8)
)
SELECT scorer, bin, n, predicted, observed FROM bins
UNION ALL
SELECT 'perfectly calibrated', e.bin, NULL, e.p, e.p
FROM (SELECT 0 AS bin, 0::numeric AS p UNION ALL SELECT 11, greatest(max(predicted), max(observed)) FROM bins) e
WHERE EXISTS (SELECT 1 FROM bins)
ORDER BY 1, 2
