-- Change notifications for subscriptions, per user, as 0018_browse_speed.sql sends them for watch_events: a server
-- process keeps each signed-in user's access (the subscription state that grants playing) and viewing positions in
-- memory for the title pages (server/browse/play.ts, viewerOf) and must drop them when that user's subscriptions
-- change — a first payment, an expiry, a failed renewal's end, a reactivation — in whichever process the write
-- happened. One function now serves both tables (0018's, which named its table, gives way to it): a statement notifies
-- '<table>:<user id>' for each user whose rows it touched and, past 100 users (a billing batch, a bulk load, a purge),
-- '<table>' once, which drops every user's entry. Loads run with session_replication_role = replica (the simulator's
-- bulk path) fire no triggers and send the '<table>' notices themselves (server/db/bulk.ts).
CREATE FUNCTION notify_user_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  touched bigint[];
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('marquee_changes', TG_TABLE_NAME);
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
    PERFORM pg_notify('marquee_changes', TG_TABLE_NAME);
  ELSIF touched IS NOT NULL THEN
    PERFORM pg_notify('marquee_changes', TG_TABLE_NAME || ':' || u) FROM unnest(touched) AS u;
  END IF;
  RETURN NULL;
END
$$;

-- A trigger with transition tables takes one event: one trigger per kind of write and table.
DROP TRIGGER watch_events_insert_notify ON watch_events;
DROP TRIGGER watch_events_update_notify ON watch_events;
DROP TRIGGER watch_events_delete_notify ON watch_events;
DROP TRIGGER watch_events_truncate_notify ON watch_events;
DROP FUNCTION notify_watch_events();
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['watch_events', 'subscriptions'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows()', t || '_insert_notify', t);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows()', t || '_update_notify', t);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows()', t || '_delete_notify', t);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I
                      FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows()', t || '_truncate_notify', t);
  END LOOP;
END
$$;
