-- @mart mart_visits_monthly
-- @unique month
-- @refresh 12 * * * *
-- @incremental month
-- Top of the funnel: distinct visitors (anonymous visitor ids) and visits per month.
SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date AS month,
       count(DISTINCT visitor_id)::int AS visitors,
       count(*)::int AS visits
FROM visits
WHERE at >= :since
GROUP BY 1
