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
  AND (:genre::text[] IS NULL OR t.id IN (
        SELECT tg.title_id FROM title_genres tg JOIN genres g ON g.id = tg.genre_id
        WHERE g.name = ANY(:genre::text[])))
  AND (:country::text[] IS NULL OR t.id IN (
        SELECT tc.title_id FROM title_countries tc JOIN countries c ON c.id = tc.country_id
        WHERE c.name = ANY(:country::text[])))
GROUP BY t.type
ORDER BY t.type
