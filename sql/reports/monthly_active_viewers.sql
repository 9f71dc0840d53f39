-- @title Monthly active viewers
-- @description Distinct customers who watched something, per month, and their average viewing.
-- @definition Monthly active viewers = distinct customers with at least one viewing session started in the UTC month.
-- @marts mart_viewers_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param country multi lookup=customer_countries label="Customer countries"
SELECT month, month = date_trunc('month', now())::date AS partial,
       sum(viewers)::int AS viewers,
       sum(plays)::int AS plays,
       round(sum(seconds_watched) / 3600.0, 1) AS hours_watched,
       round(sum(seconds_watched) / 3600.0 / nullif(sum(viewers), 0), 2) AS hours_per_viewer
FROM mart_viewers_monthly
WHERE month BETWEEN :from::date AND :to::date
  AND (:country::text[] IS NULL OR country = ANY(:country::text[]))
GROUP BY month
ORDER BY month
