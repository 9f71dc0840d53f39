-- @title Catalog: top production countries
-- @catalog
-- @description The countries that produced the most titles.
-- @definition Titles per production country; a co-production counts in each of its countries; titles without a
-- @definition country are left out.
-- @param type multi lookup=title_types label="Content type"
-- @param genre multi lookup=genres label="Genres"
-- @param limit int min=1 max=100 default=20 label="Countries"
SELECT c.name AS country, count(*)::int AS titles,
       (count(*) FILTER (WHERE t.type = 'Movie'))::int AS movies,
       (count(*) FILTER (WHERE t.type = 'TV Show'))::int AS tv_shows
FROM countries c
JOIN title_countries tc ON tc.country_id = c.id
JOIN titles t ON t.id = tc.title_id
WHERE (:type::text[] IS NULL OR t.type = ANY(:type::text[]))
  AND (:genre::text[] IS NULL OR t.id IN (SELECT id FROM catalog_titles_in(:genre::text[], NULL) AS f(id)))
GROUP BY c.name
ORDER BY titles DESC, country
LIMIT :limit
