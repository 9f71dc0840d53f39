-- @title Most-watched titles
-- @description The titles with the most hours watched over the period.
-- @definition Hours = seconds watched in viewing sessions started in the period ÷ 3600; plays = viewing sessions;
-- @definition completion rate = completed plays ÷ plays. Ties rank by title.
-- @marts mart_title_watch_ranges mart_title_watch_monthly
-- @param from month default=-11m label="From month"
-- @param to month default=0m label="To month"
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param limit int min=1 max=200 default=20 label="Titles"
-- A range of up to 12 months is ranked in mart_title_watch_ranges: its first rows in rank order (the key's index), as
-- far as the filters need, each row carrying the title's name, type and genre ids, so nothing else is read. A longer
-- range is summed from mart_title_watch_monthly (one branch runs: the other's condition is false, which gates the
-- whole branch). The genre filter is "in any of the genres asked for": the ranked rows' genre ids overlap the ids of
-- those names; the summed branch takes the same set from catalog_titles_in, as the catalog reports do.
WITH ranked AS (
  SELECT w.rank AS ord, w.title, w.type, w.show_id, w.seconds_watched AS seconds, w.plays, w.completed_plays AS completed
  FROM mart_title_watch_ranges w
  -- the months with viewing inside the asked range (the mart holds ranges within them)
  WHERE w.from_month = greatest(:from::date, (SELECT min(month) FROM mart_title_watch_monthly))
    AND w.to_month = least(:to::date, (SELECT max(month) FROM mart_title_watch_monthly))
    AND :to::date < (:from::date + interval '12 months')
    AND (:genre::text[] IS NULL OR w.genre_ids && ARRAY(SELECT g.id FROM genres g WHERE g.name = ANY(:genre::text[])))
    AND (:type::text[] IS NULL OR w.type = ANY(:type::text[]))
  ORDER BY w.rank
  LIMIT :limit::int
),
summed AS (
  SELECT row_number() OVER (ORDER BY w.seconds DESC, t.title, t.id) AS ord, t.title, t.type, t.show_id, w.seconds, w.plays, w.completed
  FROM (
    SELECT title_id, sum(seconds_watched) AS seconds, sum(plays) AS plays, sum(completed_plays) AS completed
    FROM mart_title_watch_monthly
    WHERE month BETWEEN :from::date AND :to::date AND :to::date >= (:from::date + interval '12 months')
    GROUP BY title_id
  ) w
  JOIN titles t ON t.id = w.title_id
  -- the branch's condition here too: on the join it gates the whole branch, where inside the aggregate alone the
  -- titles side (and its genre set) was still read before the empty sum was found
  WHERE :to::date >= (:from::date + interval '12 months')
    AND (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
    AND (:genre::text[] IS NULL OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], NULL) AS g(id)))
  ORDER BY w.seconds DESC, t.title, t.id
  LIMIT :limit::int
),
w AS (
  SELECT * FROM ranked UNION ALL SELECT * FROM summed
)
SELECT row_number() OVER (ORDER BY w.ord)::int AS rank,
       w.title, w.type, w.show_id,
       round(w.seconds / 3600.0, 1) AS hours_watched,
       w.plays::int AS plays,
       round(w.completed::numeric / nullif(w.plays, 0), 4) AS completion_rate
FROM w
ORDER BY w.ord
