-- @title Watch hours by genre
-- @description Hours watched per genre over the period.
-- @definition Hours = seconds watched in viewing sessions started in the period ÷ 3600. A title listed in several
-- @definition genres counts fully in each, so genres do not add up to total viewing.
-- @marts mart_genre_watch_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
SELECT genre,
       round(sum(seconds_watched) / 3600.0, 1) AS hours_watched,
       sum(plays)::int AS plays
FROM mart_genre_watch_monthly
WHERE month BETWEEN :from::date AND :to::date
  AND (:type::text[] IS NULL OR title_type = ANY(:type::text[]))
  AND (:genre::text[] IS NULL OR genre = ANY(:genre::text[]))
GROUP BY genre
ORDER BY hours_watched DESC, genre
