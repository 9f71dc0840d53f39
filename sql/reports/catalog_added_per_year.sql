-- @title Catalog: titles added per year
-- @catalog
-- @description Titles added to Netflix per year (date_added), movies and TV shows.
-- @definition Year of the title's date_added; titles without a date_added are left out.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @chart bar x=year_added:O y=titles:Q color=type:N title="Titles added per year"
SELECT extract(year FROM t.date_added)::int AS year_added, t.type, count(*)::int AS titles
FROM titles t
WHERE t.date_added IS NOT NULL
  AND (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY 1, 2
ORDER BY 1, 2
