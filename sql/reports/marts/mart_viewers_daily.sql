-- @mart mart_viewers_daily
-- @unique day, country
-- @refresh 20 * * * *
-- @incremental day
-- Daily active viewers: distinct customers who started watching anything that UTC day, by customer country
-- (each customer has one country, so the country rows add up to the daily total). Grouping by (day, customer) first
-- is a hash aggregate instead of the sort count(DISTINCT) needs, and the join to users sees each viewer once a day.
WITH per_viewer AS (
  SELECT date_trunc('day', started_at AT TIME ZONE 'UTC')::date AS day, user_id,
         count(*) AS plays, sum(seconds_watched) AS seconds_watched
  FROM watch_events
  WHERE started_at >= :since
  GROUP BY 1, 2
)
SELECT v.day,
       coalesce(u.country, '--') AS country,
       count(*)::int AS viewers,
       sum(v.plays)::int AS plays,
       sum(v.seconds_watched)::bigint AS seconds_watched
FROM per_viewer v
JOIN users u ON u.id = v.user_id
GROUP BY 1, 2
