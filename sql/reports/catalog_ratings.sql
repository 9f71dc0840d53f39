-- @title Catalog: ratings
-- @catalog
-- @description Titles by maturity rating (TV-MA, PG-13, ...).
-- @definition Titles per maturity rating as listed by Netflix; titles without a rating count as "unrated".
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @chart bar x=rating:N y=titles:Q color=type:N title="Titles by rating"
SELECT coalesce(t.rating, 'unrated') AS rating, t.type, count(*)::int AS titles
FROM titles t
WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND (:genre::text[] IS NULL OR t.id IN (
        SELECT tg.title_id FROM title_genres tg JOIN genres g ON g.id = tg.genre_id
        WHERE g.name = ANY(:genre::text[])))
  AND (:country::text[] IS NULL OR t.id IN (
        SELECT tc.title_id FROM title_countries tc JOIN countries c ON c.id = tc.country_id
        WHERE c.name = ANY(:country::text[])))
GROUP BY 1, 2
ORDER BY 1, 2
