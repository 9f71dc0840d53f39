-- @title Catalog: top genres
-- @catalog
-- @description The genres with the most titles.
-- @definition Titles per genre (Netflix's listed_in categories); a title in several genres counts in each.
-- @param type multi lookup=title_types label="Content type"
-- @param country multi lookup=countries label="Production countries"
-- @param limit int min=1 max=100 default=20 label="Genres"
SELECT g.name AS genre, count(*)::int AS titles,
       (count(*) FILTER (WHERE t.type = 'Movie'))::int AS movies,
       (count(*) FILTER (WHERE t.type = 'TV Show'))::int AS tv_shows
FROM genres g
JOIN title_genres tg ON tg.genre_id = g.id
JOIN titles t ON t.id = tg.title_id
WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND (:country::text[] IS NULL OR t.id IN (SELECT id FROM catalog_titles_in(NULL, :country::text[]) AS f(id)))
GROUP BY g.name
ORDER BY titles DESC, genre
LIMIT :limit
