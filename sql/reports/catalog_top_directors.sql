-- @title Catalog: top directors
-- @description The directors credited on the most titles.
-- @definition Titles per person credited as director; ties rank by name.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @param limit int min=1 max=100 default=20 label="People"
SELECT p.name AS director, count(*)::int AS titles,
       (count(*) FILTER (WHERE t.type = 'Movie'))::int AS movies,
       (count(*) FILTER (WHERE t.type = 'TV Show'))::int AS tv_shows
FROM people p
JOIN title_directors x ON x.person_id = p.id
JOIN titles t ON t.id = x.title_id
WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND (:genre::text[] IS NULL OR EXISTS (
        SELECT 1 FROM title_genres tg JOIN genres g ON g.id = tg.genre_id
        WHERE tg.title_id = t.id AND g.name = ANY(:genre::text[])))
  AND (:country::text[] IS NULL OR EXISTS (
        SELECT 1 FROM title_countries tc JOIN countries c ON c.id = tc.country_id
        WHERE tc.title_id = t.id AND c.name = ANY(:country::text[])))
GROUP BY p.name
ORDER BY titles DESC, director
LIMIT :limit
