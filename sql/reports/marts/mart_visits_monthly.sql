-- @mart mart_visits_monthly
-- @unique month
-- @refresh 12 * * * *
-- @incremental month
-- Top of the funnel: distinct visitors (anonymous visitor ids) and visits per month (grouped by (month, visitor)
-- first: a hash aggregate instead of the sort count(DISTINCT) needs).
WITH per_visitor AS (
  SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date AS month, visitor_id, count(*) AS visits
  FROM visits
  WHERE at >= :since
  GROUP BY 1, 2
)
SELECT month, count(*)::int AS visitors, sum(visits)::int AS visits
FROM per_visitor
GROUP BY 1
