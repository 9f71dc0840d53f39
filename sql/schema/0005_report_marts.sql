-- Report engine state: one row per materialized mart (definition hash, generation, freshness) and the history of
-- every refresh attempt. The marts themselves are materialized views created by the engine from sql/reports/marts.

CREATE TABLE report_marts (
  name             text PRIMARY KEY CHECK (name ~ '^mart_[a-z0-9_]+$' AND length(name) <= 63),
  definition_hash  text NOT NULL CHECK (definition_hash ~ '^[0-9a-f]{64}$'),
  created_at       timestamptz NOT NULL DEFAULT now(),
  -- bumped by every successful refresh (and by a re-creation): with the report and its parameters it is the ETag,
  -- and in-process result caches compare it instead of expiring by time
  generation       bigint NOT NULL DEFAULT 0 CHECK (generation >= 0),
  -- start of the last successful refresh: the data is as of this instant (now() inside the mart's query)
  as_of            timestamptz,
  last_success_id  bigint,
  -- the last attempt failed (or a mart it reads failed): the old data stays in service, reports say stale
  stale            boolean NOT NULL DEFAULT false,
  last_error       text,
  last_error_at    timestamptz
);

CREATE TABLE mart_refreshes (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mart         text NOT NULL REFERENCES report_marts (name) ON DELETE CASCADE,
  trigger      text NOT NULL CHECK (trigger IN ('schedule', 'startup', 'admin', 'manual')),
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  duration_ms  integer CHECK (duration_ms >= 0),
  rows         bigint CHECK (rows >= 0),
  error        text,
  -- the mart's generation after this refresh (NULL while running or when it failed)
  generation   bigint,
  CHECK (finished_at IS NULL OR finished_at >= started_at),
  CHECK (error IS NULL OR generation IS NULL)
);
CREATE INDEX mart_refreshes_mart_idx ON mart_refreshes (mart, started_at DESC);
CREATE INDEX mart_refreshes_started_idx ON mart_refreshes (started_at DESC);
