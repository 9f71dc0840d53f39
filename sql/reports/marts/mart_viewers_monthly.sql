-- @mart mart_viewers_monthly
-- @unique month, country
-- @refresh 25 * * * *
-- @incremental month
-- Monthly active viewers: distinct customers who started watching anything in the UTC month, by customer country.
SELECT date_trunc('month', w.started_at AT TIME ZONE 'UTC')::date AS month,
       coalesce(u.country, '--') AS country,
       count(DISTINCT w.user_id)::int AS viewers,
       count(*)::int AS plays,
       sum(w.seconds_watched)::bigint AS seconds_watched
FROM watch_events w
JOIN users u ON u.id = w.user_id
WHERE w.started_at >= :since
GROUP BY 1, 2
