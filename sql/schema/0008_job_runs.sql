-- Scheduled job runs, claimed once across instances (server/jobs). A row is one tick of one job: the instant its cron
-- schedule fired (UTC, whole second), inserted with ON CONFLICT DO NOTHING by whichever instance gets there first, so
-- two instances whose clocks differ by a few ms run each tick once. The claimer holds a lease (lease_until), renewed
-- while the job runs; a row left unfinished with an expired lease (the process was killed, its connection died) is
-- claimed again and run again. Rows older than a week are swept by the job-runs.sweep job.
CREATE TABLE job_runs (
  job          text        NOT NULL,
  scheduled_at timestamptz NOT NULL,
  claimed_by   text        NOT NULL,
  claimed_at   timestamptz NOT NULL DEFAULT now(),
  lease_until  timestamptz NOT NULL,
  attempts     integer     NOT NULL DEFAULT 1,
  finished_at  timestamptz,
  outcome      text CHECK (outcome IN ('done', 'failed', 'skipped')),
  error        text,
  PRIMARY KEY (job, scheduled_at)
);
-- the recovery scan: unfinished runs whose lease expired
CREATE INDEX job_runs_unfinished ON job_runs (lease_until) WHERE finished_at IS NULL;
