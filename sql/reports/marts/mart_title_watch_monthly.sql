-- @mart mart_title_watch_monthly
-- @unique month, title_id
-- @refresh 30 * * * *
-- @incremental month
-- Viewing per title and month: plays, completed plays, seconds watched. Genre and country breakdowns and the
-- most-watched ranking join this small table to the catalog instead of scanning watch_events.
SELECT date_trunc('month', started_at AT TIME ZONE 'UTC')::date AS month,
       title_id,
       count(*)::int AS plays,
       (count(*) FILTER (WHERE completed))::int AS completed_plays,
       sum(seconds_watched)::bigint AS seconds_watched
FROM watch_events
WHERE started_at >= :since
GROUP BY 1, 2
