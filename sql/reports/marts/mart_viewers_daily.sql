-- @mart mart_viewers_daily
-- @unique day, country
-- @refresh 20 * * * *
-- @incremental day
-- Daily active viewers: distinct customers who started watching anything that UTC day, by customer country
-- (each customer has one country, so the country rows add up to the daily total).
-- Distinct customers are counted in two steps — one row per customer and day (a hash aggregate PostgreSQL can run in
-- parallel), then one per day and country — instead of count(DISTINCT), which sorts every watch event.
SELECT pu.day,
       coalesce(u.country, '--') AS country,
       count(*)::int AS viewers,
       sum(pu.plays)::int AS plays,
       sum(pu.seconds_watched)::bigint AS seconds_watched
FROM (
  SELECT date_trunc('day', w.started_at AT TIME ZONE 'UTC')::date AS day, w.user_id,
         count(*) AS plays, sum(w.seconds_watched) AS seconds_watched
  FROM watch_events w
  WHERE w.started_at >= :since
  GROUP BY 1, 2
) pu
JOIN users u ON u.id = pu.user_id
GROUP BY 1, 2
