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
  AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
       OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
GROUP BY 1, 2
ORDER BY 1, 2
