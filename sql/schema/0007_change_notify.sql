-- Change notifications for in-process caches. A server process keeps recent session lookups and report-mart
-- generations in memory so a request needs no query for them; these triggers tell every process (NOTIFY, delivered
-- at commit) when a row such a cache holds may have changed, and the process drops what it cached (server/db/index.ts,
-- ChangeFeed). Only changes that matter notify: a session's last_seen_at touch or a user's last_login_at does not.
CREATE FUNCTION notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('marquee_changes', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE TRIGGER report_marts_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON report_marts
  FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
CREATE TRIGGER sessions_notify AFTER DELETE OR TRUNCATE OR UPDATE OF id_hash, user_id, expires_at ON sessions
  FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
CREATE TRIGGER users_notify AFTER DELETE OR TRUNCATE OR UPDATE OF id, email, display_name, role, status, must_change_password ON users
  FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
