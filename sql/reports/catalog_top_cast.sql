-- @title Catalog: top cast members
-- @catalog
-- @description The actors and actresses credited on the most titles.
-- @definition Titles per person credited as cast; ties rank by name.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param country multi lookup=countries label="Production countries"
-- @param limit int min=1 max=100 default=20 label="People"
-- The plan (README "Report engine", catalog reports): count titles per person id over title_cast alone (the filters
-- fold away when none is chosen: no join), keep the top :limit with ties, then only for those few people look up the
-- name and split movies / TV shows through the indexes.
WITH chosen AS (
  SELECT t.id FROM titles t
  WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
    AND ((:genre::text[] IS NULL AND :country::text[] IS NULL)
         OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], :country::text[]) AS f(id)))
),
top AS (
  SELECT x.person_id, count(*) AS titles
  FROM title_cast x
  WHERE (:type::text[] IS NULL AND :genre::text[] IS NULL AND :country::text[] IS NULL) OR x.title_id IN (SELECT id FROM chosen)
  GROUP BY x.person_id
  ORDER BY titles DESC
  FETCH FIRST :limit ROWS WITH TIES
)
SELECT (SELECT p.name FROM people p WHERE p.id = c.person_id) AS cast_member, c.titles::int AS titles,
       s.movies::int AS movies, s.tv_shows::int AS tv_shows
FROM top c
CROSS JOIN LATERAL (
  SELECT count(*) FILTER (WHERE t.type = 'Movie') AS movies, count(*) FILTER (WHERE t.type = 'TV Show') AS tv_shows
  FROM title_cast x JOIN titles t ON t.id = x.title_id
  WHERE x.person_id = c.person_id
    AND ((:type::text[] IS NULL AND :genre::text[] IS NULL AND :country::text[] IS NULL) OR x.title_id IN (SELECT id FROM chosen))
) s
ORDER BY c.titles DESC, cast_member
LIMIT :limit
