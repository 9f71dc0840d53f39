-- @mart mart_visits_monthly
-- @unique month
-- @refresh 12 * * * *
-- @incremental month
-- Top of the funnel: distinct visitors (anonymous visitor ids) and visits per month.
-- Distinct visitors in two steps (one row per visitor and month, then per month) rather than count(DISTINCT), which
-- sorts every visit: the inner hash aggregate can run in parallel.
SELECT month, count(*)::int AS visitors, sum(visits)::int AS visits
FROM (
  SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date AS month, visitor_id, count(*) AS visits
  FROM visits
  WHERE at >= :since
  GROUP BY 1, 2
) pv
GROUP BY 1
