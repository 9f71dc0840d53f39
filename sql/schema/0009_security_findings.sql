-- Issue 14 (security review), findings 7 and 8.
-- 8: our own request id is always generated; a well-formed X-Request-Id sent by the client is kept beside it, never
--    instead of it (server/app.ts), so a client cannot make its rows look like another request's.
ALTER TABLE audit_log ADD COLUMN client_request_id text CHECK (length(client_request_id) <= 64);

-- 7: sign-up answers the same whether or not the address has an account; the address's owner confirms by a one-time
--    link from the outbox (server/auth/signup.ts). A pending sign-up keeps the chosen password's argon2id hash until
--    the link is used (the row is deleted then) or expires (deleted by the next sign-up request after that).
CREATE TABLE signup_requests (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- SHA-256 of the link's 256-bit token
  email         text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
  display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
  password_hash text NOT NULL,
  next_path     text,
  ip            inet,
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL
);
CREATE INDEX signup_requests_expires_idx ON signup_requests (expires_at);
