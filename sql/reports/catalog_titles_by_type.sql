-- @title Catalog: titles by type
-- @catalog
-- @description How many movies and TV shows the catalog holds.
-- @definition Titles in the catalog by type (Movie, TV Show), within the genre and country filters.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @chart arc theta=titles:Q color=type:N title="Titles by type"
SELECT t.type, count(*)::int AS titles,
       round(count(*)::numeric / sum(count(*)) OVER (), 4) AS share
FROM titles t
WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY t.type
ORDER BY t.type
