-- @title Daily active viewers
-- @description Distinct customers who watched something, per UTC day.
-- @definition Daily active viewers = distinct customers with at least one viewing session started that UTC day.
-- @marts mart_viewers_daily
-- @param from month default=-2m label="From month"
-- @param to month default=0m label="To month"
-- @param country multi lookup=customer_countries label="Customer countries"
-- @chart line x=day:T y=viewers:Q title="Daily active viewers"
-- @rowcap 5000
SELECT day, day = (now() AT TIME ZONE 'UTC')::date AS partial,
       sum(viewers)::int AS viewers,
       sum(plays)::int AS plays,
       round(sum(seconds_watched) / 3600.0, 1) AS hours_watched
FROM mart_viewers_daily
WHERE day >= :from::date AND day < (:to::date + interval '1 month')
  AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
GROUP BY day
ORDER BY day
