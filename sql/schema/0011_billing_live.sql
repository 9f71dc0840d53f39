-- Live billing (issue 15): people subscribe, pay, change plan and cancel through the same state machine the simulator
-- drives (server/billing/machine.ts). What the machine's rows do not hold lives here: the card on file, the charge
-- a payment row is waiting for while the gateway has not answered, the outcome of every submitted billing form (so a
-- double click charges once), and the built-in test gateway's own ledger.

-- The card on file: one per customer. Only what a receipt or the account page shows, plus the gateway's token for
-- off-session charges (renewals, retries). Never the card number or the CVC.
CREATE TABLE payment_methods (
  user_id       bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  gateway       text NOT NULL CHECK (gateway ~ '^[a-z][a-z0-9_]*$'),
  gateway_token text NOT NULL CHECK (length(gateway_token) BETWEEN 1 AND 200),
  brand         text NOT NULL CHECK (brand IN ('visa', 'mastercard', 'amex', 'discover', 'card')),
  last4         text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
  exp_month     smallint NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
  exp_year      smallint NOT NULL CHECK (exp_year BETWEEN 2000 AND 2200),
  updated_at    timestamptz NOT NULL
);

-- What a live charge was for, written with its payment row before the gateway is asked: while that row is `pending`
-- (the gateway timed out) this says which machine input to apply once the outcome is known, and with which card.
CREATE TABLE payment_charge_intents (
  payment_id    bigint PRIMARY KEY REFERENCES payments (id),
  user_id       bigint NOT NULL REFERENCES users (id),
  input         jsonb NOT NULL CHECK (input ? 'type' AND input ? 'at'),
  gateway_token text NOT NULL,
  off_session   boolean NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX payment_charge_intents_user_idx ON payment_charge_intents (user_id);
-- the reconciler walks pending payments; most rows are settled, so index only those
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';

-- Each billing form carries a random key rendered with it; the first request with a key claims it here, repeats
-- (double click, back-and-resubmit, concurrent duplicates) wait for and return the first outcome.
CREATE TABLE billing_requests (
  user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  idempotency_key text NOT NULL CHECK (idempotency_key ~ '^[A-Za-z0-9_-]{16,100}$'),
  action          text NOT NULL CHECK (action ~ '^[a-z_]+$'),
  state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
  status_code     smallint CHECK (status_code BETWEEN 200 AND 599),
  location        text,
  message         text,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (user_id, idempotency_key),
  CHECK ((state = 'done') = (status_code IS NOT NULL))
);
CREATE INDEX billing_requests_created_idx ON billing_requests (created_at);

-- The built-in test gateway (server/billing/gateway.ts): its cards (by behaviour, never the number) and every charge
-- and refund it made, keyed by idempotency key, so "charged once" holds across restarts and can be asserted.
CREATE TABLE test_gateway_cards (
  token      text PRIMARY KEY,
  behavior   text NOT NULL CHECK (behavior IN ('succeed', 'decline', 'insufficient_funds', 'fail_off_session')),
  brand      text NOT NULL,
  last4      text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE test_gateway_charges (
  idempotency_key text PRIMARY KEY,
  operation       text NOT NULL CHECK (operation IN ('charge', 'refund')),
  token           text,
  amount_cents    integer NOT NULL CHECK (amount_cents > 0),
  currency        text NOT NULL,
  off_session     boolean NOT NULL DEFAULT false,
  status          text NOT NULL CHECK (status IN ('succeeded', 'declined', 'insufficient_funds', 'error')),
  reason          text,
  message         text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
