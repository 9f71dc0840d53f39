-- @mart mart_viewers_daily
-- @unique day, country
-- @refresh 20 * * * *
-- @incremental day
-- Daily active viewers: distinct customers who started watching anything that UTC day, by customer country
-- (each customer has one country, so the country rows add up to the daily total).
SELECT date_trunc('day', w.started_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(u.country, '--') AS country,
       count(DISTINCT w.user_id)::int AS viewers,
       count(*)::int AS plays,
       sum(w.seconds_watched)::bigint AS seconds_watched
FROM watch_events w
JOIN users u ON u.id = w.user_id
WHERE w.started_at >= :since
GROUP BY 1, 2
