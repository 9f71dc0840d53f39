-- The catalog's generation (README "Report engine"): reports that read only the titles catalog (`-- @catalog`) are
-- cached under it exactly as mart-backed reports are cached under their marts' generations. Any transaction that writes
-- a catalog table moves it once, in that transaction (the titles ETL needs no code for it); the row's
-- notify trigger tells every server process at commit (server/db/index.ts, ChangeFeed) to drop what it cached.
CREATE TABLE catalog_state (
  only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  generation bigint NOT NULL DEFAULT 1,
  -- when the catalog was last written: the start of the writing transaction (a titles load)
  loaded_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO catalog_state DEFAULT VALUES;

-- SECURITY DEFINER: a role that may write the catalog (e.g. the loader's, owning those tables) need not be granted
-- catalog_state; search_path pinned to this schema, as for every definer function.
CREATE FUNCTION catalog_bump() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
  -- once per transaction: readers never see its middle, and a writer of many statements (row-by-row INSERTs) must not
  -- stack thousands of versions of this row (each UPDATE of a row already updated in the transaction walks them all)
  UPDATE catalog_state SET generation = generation + 1, loaded_at = now() WHERE xmin <> pg_current_xact_id()::xid;
  RETURN NULL;
END
$$;

-- FOR EACH STATEMENT: one cheap update per statement, whatever the rows (a bulk COPY of 10 million link rows bumps
-- once). ENABLE ALWAYS: the loader's bulk path writes link tables with session_replication_role = replica, which
-- would otherwise skip these triggers.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['titles', 'genres', 'countries', 'people',
                           'title_genres', 'title_countries', 'title_cast', 'title_directors'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                      FOR EACH STATEMENT EXECUTE FUNCTION catalog_bump()', t || '_catalog_bump', t);
    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER %I', t, t || '_catalog_bump');
  END LOOP;
END
$$;

CREATE TRIGGER catalog_state_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON catalog_state
  FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
