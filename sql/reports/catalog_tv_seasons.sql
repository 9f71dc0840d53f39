-- @title Catalog: TV show seasons
-- @catalog
-- @description TV shows by number of seasons.
-- @definition TV shows by their number of seasons on Netflix; shows without a season count are left out.
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @chart bar x=seasons:O y=tv_shows:Q title="TV shows by seasons"
SELECT t.seasons::int AS seasons, count(*)::int AS tv_shows
FROM titles t
WHERE t.type = 'TV Show' AND t.seasons IS NOT NULL
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY 1
ORDER BY 1
