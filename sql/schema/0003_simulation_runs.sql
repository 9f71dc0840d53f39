-- One row per business-simulator run (npm run simulate): what was generated, from which seed and parameters, over
-- which window, so a history can be reproduced exactly. At most one simulated history exists at a time (the simulator
-- refuses a second one unless --reset, which removes the run row together with its data).
CREATE TABLE simulation_runs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  seed         bigint NOT NULL,
  profile      text NOT NULL,
  params       jsonb NOT NULL,                       -- every effective parameter (profile + flags)
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,                 -- the --end date at 00:00 UTC
  users        integer NOT NULL CHECK (users > 0),
  row_counts   jsonb NOT NULL DEFAULT '{}',          -- table -> rows written
  expected     jsonb NOT NULL DEFAULT '{}',          -- model expectations the validation summary compares against
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  CHECK (window_end > window_start)
);
