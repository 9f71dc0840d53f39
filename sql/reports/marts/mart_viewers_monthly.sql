-- @mart mart_viewers_monthly
-- @unique month, country
-- @refresh 25 * * * *
-- @incremental month
-- Monthly active viewers: distinct customers who started watching anything in the UTC month, by customer country
-- (grouped by (month, customer) first: see mart_viewers_daily).
WITH per_viewer AS (
  SELECT date_trunc('month', started_at AT TIME ZONE 'UTC')::date AS month, user_id,
         count(*) AS plays, sum(seconds_watched) AS seconds_watched
  FROM watch_events
  WHERE started_at >= :since
  GROUP BY 1, 2
)
SELECT v.month,
       coalesce(u.country, '--') AS country,
       count(*)::int AS viewers,
       sum(v.plays)::int AS plays,
       sum(v.seconds_watched)::bigint AS seconds_watched
FROM per_viewer v
JOIN users u ON u.id = v.user_id
GROUP BY 1, 2
