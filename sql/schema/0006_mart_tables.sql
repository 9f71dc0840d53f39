-- Marts are tables now (they were materialized views): the engine refreshes an @incremental mart by deleting and
-- re-inserting only its trailing window (from the month before its last refresh on), and rebuilds a mart in full
-- only when it must: first build, changed definition, a mart it reads was rebuilt, or the history was rewritten.
--
-- "History rewritten" is history_epoch: every writer of rows dated in the past (the business simulator, a bulk
-- import) bumps it in its own transaction; the billing engine and the activity routes write at now() and do not.
-- The simulator records every run (and every --reset) in simulation_runs, so a trigger there bumps the epoch; it
-- fires even under session_replication_role = replica, which bulk loads use.
CREATE TABLE history_epoch (
  id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  epoch      bigint NOT NULL DEFAULT 0,
  changed_at timestamptz NOT NULL DEFAULT now(),
  reason     text
);
INSERT INTO history_epoch DEFAULT VALUES;

CREATE FUNCTION history_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE history_epoch SET epoch = epoch + 1, changed_at = now(), reason = TG_TABLE_NAME || ' ' || lower(TG_OP);
  RETURN NULL;
END $$;
CREATE TRIGGER simulation_runs_history_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON simulation_runs
  FOR EACH STATEMENT EXECUTE FUNCTION history_epoch_bump();
ALTER TABLE simulation_runs ENABLE ALWAYS TRIGGER simulation_runs_history_epoch;

-- the history epoch of the mart's last full build, and when that build's data was as of: a mart reading another
-- rebuilds in full when its source was rebuilt after it
ALTER TABLE report_marts ADD COLUMN built_epoch bigint, ADD COLUMN full_as_of timestamptz;
-- full: the whole mart recomputed; incremental: rows from `since` on
ALTER TABLE mart_refreshes ADD COLUMN mode text CHECK (mode IN ('full', 'incremental')), ADD COLUMN since timestamptz,
  ADD CHECK (since IS NULL OR mode = 'incremental');
