-- @mart mart_viewers_daily
-- @unique day, country
-- @refresh 20 * * * *
-- @incremental day
-- Daily active viewers: distinct customers who started watching anything that UTC day, by customer country
-- (each customer has one country, so the country rows add up to the daily total). first_day_viewers: of those, the
-- customers for whom it is their first viewing day of the month, so a month's distinct viewers are the sum of its days'
-- first_day_viewers (mart_viewers_monthly reads this mart instead of scanning watch_events again). A refresh window
-- starts on a month's first day (README "Metrics: reports and marts"), so each month in it is whole.
-- Distinct customers are counted in steps instead of count(DISTINCT), which sorts every watch event: one row per
-- customer and day, read in (customer, day) order — at 1M customers PostgreSQL reads the events through
-- watch_events_user_idx, whose order is the table's (events are written customer by customer), and sorts each
-- customer's few events, with no hash table of tens of millions of customer-days — then whether the day is the
-- customer's first of its month (the customer's previous day in that order), then one row per day and country.
WITH per_day AS (
  SELECT e.user_id, date_trunc('day', e.started_at AT TIME ZONE 'UTC')::date AS day,
         count(*) AS plays, sum(e.seconds_watched) AS seconds_watched
  FROM watch_events e
  WHERE e.started_at >= :since
  GROUP BY e.user_id, 2
),
marked AS (
  SELECT d.user_id, d.day, d.plays, d.seconds_watched,
         date_trunc('month', lag(d.day) OVER (PARTITION BY d.user_id ORDER BY d.day))
           IS DISTINCT FROM date_trunc('month', d.day) AS first_in_month
  FROM per_day d
)
SELECT m.day,
       coalesce(u.country, '--') AS country,
       count(*)::int AS viewers,
       (count(*) FILTER (WHERE m.first_in_month))::int AS first_day_viewers,
       sum(m.plays)::int AS plays,
       sum(m.seconds_watched)::bigint AS seconds_watched
FROM marked m
JOIN users u ON u.id = m.user_id
GROUP BY 1, 2
