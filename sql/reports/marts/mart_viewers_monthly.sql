-- @mart mart_viewers_monthly
-- @unique month, country
-- @refresh 25 * * * *
-- @depends mart_viewers_daily
-- @incremental month
-- Monthly active viewers: distinct customers who started watching anything in the UTC month, by customer country.
-- Summed from mart_viewers_daily, whose first_day_viewers counts each customer once per month (on their first viewing
-- day of it), instead of a second pass over watch_events.
SELECT date_trunc('month', d.day)::date AS month,
       d.country,
       sum(d.first_day_viewers)::int AS viewers,
       sum(d.plays)::int AS plays,
       sum(d.seconds_watched)::bigint AS seconds_watched
FROM mart_viewers_daily d
WHERE d.day >= (:since AT TIME ZONE 'UTC')::date
GROUP BY 1, 2
