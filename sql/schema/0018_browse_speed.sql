-- Speed for /browse (README "Catalog, play and visits"): search over stored folded text, and change notifications that
-- let a process keep each user's "Continue watching".

-- Search compares the query with browse_fold(title) and browse_fold(name). Computed per candidate row, the fold cost
-- as much as the trigram comparison itself (several times per row: index recheck, filter, score): stored once here,
-- kept by PostgreSQL on every insert and update, and indexed instead of the expressions.
ALTER TABLE titles ADD COLUMN title_folded text GENERATED ALWAYS AS (browse_fold(title)) STORED;
ALTER TABLE people ADD COLUMN name_folded text GENERATED ALWAYS AS (browse_fold(name)) STORED;
CREATE INDEX titles_title_folded_trgm_idx ON titles USING gin (title_folded gin_trgm_ops);
CREATE INDEX people_name_folded_trgm_idx ON people USING gin (name_folded gin_trgm_ops);
DROP INDEX titles_title_trgm_idx;
DROP INDEX people_name_trgm_idx;

-- Change notifications for the viewing history (the mechanism of 0007_change_notify.sql): a server process keeps each
-- signed-in user's "Continue watching" shelf in memory (server/browse/catalog.ts) and must drop it when that user's
-- watch_events change, in whichever process the write happened. A statement notifies 'watch_events:<user id>' for each
-- user whose rows it touched — the progress API touches one — and, past 100 users (a bulk load or a purge),
-- 'watch_events' once, which drops every user's shelf. Loads run with session_replication_role = replica (the
-- simulator's bulk path) fire no triggers; they only add rows for users created in the same load, whom no cache holds.
CREATE FUNCTION notify_watch_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  touched bigint[];
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('marquee_changes', 'watch_events');
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT array_agg(user_id) INTO touched FROM (SELECT DISTINCT user_id FROM new_rows LIMIT 101) x;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(user_id) INTO touched FROM (SELECT DISTINCT user_id FROM old_rows LIMIT 101) x;
  ELSE
    SELECT array_agg(user_id) INTO touched FROM (
      SELECT DISTINCT user_id FROM (SELECT user_id FROM new_rows UNION ALL SELECT user_id FROM old_rows) y LIMIT 101) x;
  END IF;
  IF cardinality(touched) > 100 THEN
    PERFORM pg_notify('marquee_changes', 'watch_events');
  ELSIF touched IS NOT NULL THEN
    PERFORM pg_notify('marquee_changes', 'watch_events:' || u) FROM unnest(touched) AS u;
  END IF;
  RETURN NULL;
END
$$;

-- A trigger with transition tables takes one event: one trigger per kind of write.
CREATE TRIGGER watch_events_insert_notify AFTER INSERT ON watch_events
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_watch_events();
CREATE TRIGGER watch_events_update_notify AFTER UPDATE ON watch_events
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_watch_events();
CREATE TRIGGER watch_events_delete_notify AFTER DELETE ON watch_events
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_watch_events();
CREATE TRIGGER watch_events_truncate_notify AFTER TRUNCATE ON watch_events
  FOR EACH STATEMENT EXECUTE FUNCTION notify_watch_events();
