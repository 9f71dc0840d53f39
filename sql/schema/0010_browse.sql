-- The subscriber-facing catalog (issue 15): typo-tolerant search over titles and people, and the viewing index
-- behind "Popular now".
--
-- Search folds case and accents (browse_fold: "Amélie" and "amelie" meet) and matches by trigrams (pg_trgm), so a
-- misspelt word still shares most of its trigrams with the right one ("stranger thigns" ~ "Stranger Things").
-- The GIN indexes answer `%` (similarity) and `<%` (word similarity) over the folded text.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;

-- A SQL-standard body is bound when created: no search_path lookup at run time, so it is safe to index.
CREATE FUNCTION browse_fold(text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN lower(public.unaccent('public.unaccent'::regdictionary, $1));

CREATE INDEX titles_title_trgm_idx ON titles USING gin (browse_fold(title) gin_trgm_ops);
CREATE INDEX people_name_trgm_idx ON people USING gin (browse_fold(name) gin_trgm_ops);

-- "Popular now" counts the last 30 days of plays per title: an index-only range scan with the title beside the time.
CREATE INDEX watch_events_started_title_idx ON watch_events (started_at) INCLUDE (title_id);
