-- @title Catalog: release years
-- @catalog
-- @description Titles by the year they were first released.
-- @definition Release year of each title (movies and TV shows); titles without a release year are left out.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @param since int min=1900 max=2100 default=1990 label="Released since"
-- @chart bar x=release_year:O y=titles:Q color=type:N title="Titles by release year"
SELECT t.release_year::int AS release_year, t.type, count(*)::int AS titles
FROM titles t
WHERE t.release_year >= :since
  AND (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY 1, 2
ORDER BY 1, 2
