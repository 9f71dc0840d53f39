-- Sharing (README "Sharing: embeds and API tokens"): signing keys for embed links, the links themselves and every
-- view of one, and personal API tokens (stored as their SHA-256 only, like sessions).

-- The embed signing key a clean clone signs with when MARQUEE_EMBED_KEYS is unset: generated on first use by whichever
-- instance gets there first (ON CONFLICT DO NOTHING), so every instance signs and verifies with the same one.
CREATE TABLE embed_keys (
  kid        text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{1,64}$'),
  secret     bytea NOT NULL CHECK (length(secret) >= 32),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE embed_links (
  id             uuid PRIMARY KEY,
  resource_kind  text NOT NULL CHECK (resource_kind IN ('report', 'dashboard')),
  resource_id    text NOT NULL,
  -- the parameters the token fixes (name -> value or list) and the names a viewer may change
  locked         jsonb NOT NULL DEFAULT '{}',
  free           text[] NOT NULL DEFAULT '{}',
  allowed_origin text,
  token          text NOT NULL,
  created_by     bigint NOT NULL REFERENCES users (id),
  created_at     timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL CHECK (expires_at > created_at AND expires_at <= created_at + interval '7 days'),
  revoked_at     timestamptz,
  revoked_by     bigint REFERENCES users (id)
);
CREATE INDEX embed_links_created ON embed_links (created_at DESC);

CREATE TABLE embed_views (
  id        bigserial PRIMARY KEY,
  link_id   uuid NOT NULL REFERENCES embed_links (id),
  viewed_at timestamptz NOT NULL,
  -- where: the embedding page as the browser named it (Referer, else Origin), and the viewer's address
  referrer  text,
  ip        inet,
  user_agent text
);
CREATE INDEX embed_views_link ON embed_views (link_id, viewed_at DESC);

CREATE TABLE api_tokens (
  id           bigserial PRIMARY KEY,
  user_id      bigint NOT NULL REFERENCES users (id),
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  token_hash   bytea NOT NULL UNIQUE,
  -- the first characters of the token, to tell tokens apart in lists (never enough to use one)
  prefix       text NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
  last_used_at timestamptz,
  revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at DESC);
