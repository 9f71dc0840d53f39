-- Billing jobs (issue 15): renewals at period end, dunning retries, expiry of incomplete subscriptions
-- (server/billing/jobs.ts). The steps themselves need no new table: each one is a state-machine input applied under
-- the subscription's row lock, and its payment row carries the machine's deterministic idempotency key, so a re-run
-- or a second instance finds the step done. What is new: the indexes the jobs find due work with, in due order, and
-- the back-off state a gateway outage leaves.

-- due work, oldest first: period ends of active subscriptions, retries of past_due ones, incomplete ones to expire
CREATE INDEX subscriptions_renewal_due_idx ON subscriptions (current_period_end, id) WHERE status = 'active';
CREATE INDEX subscriptions_past_due_idx ON subscriptions (current_period_start, id) WHERE status = 'past_due';
CREATE INDEX subscriptions_incomplete_idx ON subscriptions (created_at, id) WHERE status = 'incomplete';

-- A gateway outage (error, timeout, unreachable) stops a job's batch and makes it wait before trying again: one row per
-- job while it backs off (doubling from a minute up to 30), removed by the next run that reaches the gateway.
CREATE TABLE billing_job_backoff (
  job        text PRIMARY KEY CHECK (job ~ '^billing\.[a-z-]+$'),
  until      timestamptz NOT NULL,
  failures   integer NOT NULL CHECK (failures > 0),
  last_error text NOT NULL,
  updated_at timestamptz NOT NULL
);

-- the "expired incomplete subscriptions" report (sql/reports/subscriptions_expired_incomplete.sql) reads these by date
CREATE INDEX subscriptions_expired_idx ON subscriptions (ended_at) WHERE end_reason = 'expired';

-- The jobs write charge intents for simulated customers too (their renewals carry on live), so the simulator's
-- `--reset`, which deletes simulated users and their payments, must take the intents with them.
ALTER TABLE payment_charge_intents
  DROP CONSTRAINT payment_charge_intents_payment_id_fkey,
  ADD CONSTRAINT payment_charge_intents_payment_id_fkey FOREIGN KEY (payment_id) REFERENCES payments (id) ON DELETE CASCADE,
  DROP CONSTRAINT payment_charge_intents_user_id_fkey,
  ADD CONSTRAINT payment_charge_intents_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
