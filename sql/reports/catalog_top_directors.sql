-- @title Catalog: top directors
-- @catalog
-- @description The directors credited on the most titles.
-- @definition Titles per person credited as director; ties rank by name.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @param limit int min=1 max=100 default=20 label="People"
-- Count by person id first (integers, no name comparisons), then look up names only for the top of the list. A genre
-- or country filter is one hashed set of title ids (catalog_titles_in, migration 0027), not a lookup per title.
WITH counts AS (
  SELECT x.person_id, count(*) AS titles,
         count(*) FILTER (WHERE t.type = 'Movie') AS movies,
         count(*) FILTER (WHERE t.type = 'TV Show') AS tv_shows
  FROM title_directors x
  JOIN titles t ON t.id = x.title_id
  WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
    AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
         OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
  GROUP BY x.person_id
),
cutoff AS (
  SELECT titles FROM counts ORDER BY titles DESC OFFSET (:limit - 1) LIMIT 1
)
SELECT (SELECT p.name FROM people p WHERE p.id = c.person_id) AS director, c.titles::int AS titles, c.movies::int AS movies,
       c.tv_shows::int AS tv_shows
FROM counts c
WHERE c.titles >= coalesce((SELECT titles FROM cutoff), 0)
ORDER BY c.titles DESC, director
LIMIT :limit
