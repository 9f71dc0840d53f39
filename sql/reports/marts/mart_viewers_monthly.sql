-- @mart mart_viewers_monthly
-- @unique month, country
-- @refresh 25 * * * *
-- @incremental month
-- Monthly active viewers: distinct customers who started watching anything in the UTC month, by customer country.
-- Distinct customers are counted in two steps — one row per customer and month (a hash aggregate PostgreSQL can run
-- in parallel), then one per month and country — instead of count(DISTINCT), which sorts every watch event.
SELECT pu.month,
       coalesce(u.country, '--') AS country,
       count(*)::int AS viewers,
       sum(pu.plays)::int AS plays,
       sum(pu.seconds_watched)::bigint AS seconds_watched
FROM (
  SELECT date_trunc('month', w.started_at AT TIME ZONE 'UTC')::date AS month, w.user_id,
         count(*) AS plays, sum(w.seconds_watched) AS seconds_watched
  FROM watch_events w
  WHERE w.started_at >= :since
  GROUP BY 1, 2
) pu
JOIN users u ON u.id = pu.user_id
GROUP BY 1, 2
