-- @title Catalog: movie durations
-- @catalog
-- @description Movies by running time, in 10-minute bins.
-- @definition Movies by duration in minutes, binned by 10 (minutes_from = 90 covers 90 to 99 minutes); movies without
-- @definition a duration are left out.
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @chart bar x=minutes_from:O y=movies:Q title="Movies by duration (minutes)"
SELECT (t.duration_minutes / 10 * 10)::int AS minutes_from, count(*)::int AS movies
FROM titles t
WHERE t.type = 'Movie' AND t.duration_minutes IS NOT NULL
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY 1
ORDER BY 1
