-- Scheduled digests (server/sharing/digests.ts): a manager or admin subscribes to a dashboard or report path (with its
-- query, the state it shows) weekly or monthly; the digests job renders its snapshot as the subscriber's role and mails
-- it. One delivery row per (subscription, period) — inserted with ON CONFLICT DO NOTHING, claimed FOR UPDATE SKIP
-- LOCKED while it is sent — so a period's digest is sent once however many instances run the job; a failed send is
-- retried with backoff (next_attempt_at) until it succeeds or gives up (status failed).
CREATE TABLE digest_subscriptions (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  path         text NOT NULL CHECK (path ~ '^/(dashboards|reports)/' AND length(path) <= 4000),
  title        text NOT NULL,
  frequency    text NOT NULL CHECK (frequency IN ('weekly', 'monthly')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  cancelled_at timestamptz
);
-- one live subscription per user, path and frequency
CREATE UNIQUE INDEX digest_subscriptions_live ON digest_subscriptions (user_id, path, frequency) WHERE cancelled_at IS NULL;

CREATE TABLE digest_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id bigint NOT NULL REFERENCES digest_subscriptions (id) ON DELETE CASCADE,
  -- the period this digest covers: 2026-W49 (ISO week) or 2026-12
  period          text NOT NULL CHECK (period ~ '^\d{4}-(W\d{2}|\d{2})$'),
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  -- smtp or outbox, and the message id the mail went out with
  transport       text CHECK (transport IN ('smtp', 'outbox')),
  message_id      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz,
  UNIQUE (subscription_id, period)
);
-- the job's scan: deliveries still to send
CREATE INDEX digest_deliveries_due ON digest_deliveries (next_attempt_at) WHERE status = 'pending';
