-- @mart mart_genre_watch_monthly
-- @unique month, genre, title_type
-- @refresh 35 * * * *
-- @depends mart_title_watch_monthly
-- Viewing per genre and month. A title listed in several genres counts in each of them, so genre rows do not add
-- up to total viewing.
SELECT tw.month, g.name AS genre, t.type AS title_type,
       sum(tw.plays)::int AS plays,
       sum(tw.seconds_watched)::bigint AS seconds_watched
FROM mart_title_watch_monthly tw
JOIN titles t ON t.id = tw.title_id
JOIN title_genres tg ON tg.title_id = tw.title_id
JOIN genres g ON g.id = tg.genre_id
GROUP BY 1, 2, 3
