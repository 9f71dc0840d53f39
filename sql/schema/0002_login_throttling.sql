-- Sign-in throttling (issue 5). Every password check is recorded before it runs (succeeded NULL while in flight), so
-- parallel guesses are counted too; the throttle reads failures per account, per client IP and per known device.
CREATE TABLE login_attempts (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL,
  -- the email as submitted, trimmed and lowercased; unknown emails are throttled exactly like real ones
  account     text NOT NULL CHECK (length(account) BETWEEN 1 AND 254 AND account = lower(account)),
  ip          inet,
  -- SHA-256 of the known-device cookie presented with the attempt, if it was valid for this account
  device_hash bytea CHECK (device_hash IS NULL OR length(device_hash) = 32),
  succeeded   boolean
);
CREATE INDEX login_attempts_account_idx ON login_attempts (account, at DESC);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, at DESC) WHERE ip IS NOT NULL;
CREATE INDEX login_attempts_device_idx ON login_attempts (device_hash, at DESC) WHERE device_hash IS NOT NULL;
CREATE INDEX login_attempts_at_idx ON login_attempts (at);

-- Browsers that signed in successfully before (OWASP "device cookies"): attempts from them are throttled per device,
-- not per account, so an attacker hammering an account cannot keep its owner out.
CREATE TABLE known_devices (
  token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),
  user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL,
  last_used_at timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  CHECK (expires_at > created_at)
);
CREATE INDEX known_devices_user_idx ON known_devices (user_id);
CREATE INDEX known_devices_expires_idx ON known_devices (expires_at);
