-- Schema v1: the data model of DESIGN.md. Money is integer cents + ISO currency; times are timestamptz (UTC).
-- Big event tables (payments, visits, watch_events) carry user_id and are indexed by it so they can later be
-- distributed on it (Citus); small lookups (plans, genres, countries) can become reference tables.

-- ── people who use Marquee ─────────────────────────────────────────────────────────────────────────────────────
CREATE TABLE users (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email                text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
  display_name         text NOT NULL CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
  country              text CHECK (country ~ '^[A-Z]{2}$'),
  role                 text NOT NULL DEFAULT 'subscriber' CHECK (role IN ('admin', 'analyst', 'manager', 'subscriber')),
  status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  -- NULL: the account cannot log in (simulated customers). 'sha256$<hex>' marks a legacy import, rehashed on login.
  password_hash        text,
  must_change_password boolean NOT NULL DEFAULT false,
  simulated            boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  last_login_at        timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role) WHERE role <> 'subscriber';
CREATE INDEX users_created_at_idx ON users (created_at);

CREATE TABLE sessions (
  id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32), -- SHA-256 of the cookie value; the value itself is never stored
  user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  ip           inet,
  user_agent   text,
  CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  actor_id    bigint REFERENCES users (id) ON DELETE SET NULL,
  action      text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
  target_type text,
  target_id   text,
  before      jsonb,
  after       jsonb,
  ip          inet,
  request_id  text
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, at DESC);

-- ── catalog ────────────────────────────────────────────────────────────────────────────────────────────────────
CREATE TABLE titles (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  show_id          text NOT NULL UNIQUE CHECK (length(show_id) BETWEEN 1 AND 64),
  type             text NOT NULL CHECK (type IN ('Movie', 'TV Show')),
  title            text NOT NULL CHECK (length(title) >= 1),
  release_year     smallint CHECK (release_year BETWEEN 1900 AND 2100),
  rating           text,
  duration_minutes integer CHECK (duration_minutes > 0),
  seasons          integer CHECK (seasons > 0),
  date_added       date,
  description      text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (type = 'Movie' OR duration_minutes IS NULL),
  CHECK (type = 'TV Show' OR seasons IS NULL)
);
CREATE INDEX titles_type_idx ON titles (type);
CREATE INDEX titles_date_added_idx ON titles (date_added);
CREATE INDEX titles_release_year_idx ON titles (release_year);

CREATE TABLE genres    (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE CHECK (length(name) >= 1));
CREATE TABLE countries (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE CHECK (length(name) >= 1));
CREATE TABLE people    (id bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE CHECK (length(name) >= 1));

CREATE TABLE title_genres (
  title_id bigint  NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  genre_id integer NOT NULL REFERENCES genres (id),
  PRIMARY KEY (title_id, genre_id)
);
CREATE INDEX title_genres_genre_idx ON title_genres (genre_id);
CREATE TABLE title_countries (
  title_id   bigint  NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  country_id integer NOT NULL REFERENCES countries (id),
  PRIMARY KEY (title_id, country_id)
);
CREATE INDEX title_countries_country_idx ON title_countries (country_id);
CREATE TABLE title_cast (
  title_id  bigint   NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  person_id bigint   NOT NULL REFERENCES people (id),
  ord       smallint NOT NULL CHECK (ord >= 0),
  PRIMARY KEY (title_id, person_id)
);
CREATE INDEX title_cast_person_idx ON title_cast (person_id);
CREATE TABLE title_directors (
  title_id  bigint   NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  person_id bigint   NOT NULL REFERENCES people (id),
  ord       smallint NOT NULL CHECK (ord >= 0),
  PRIMARY KEY (title_id, person_id)
);
CREATE INDEX title_directors_person_idx ON title_directors (person_id);

-- ── billing ────────────────────────────────────────────────────────────────────────────────────────────────────
CREATE TABLE plans (
  id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  code             text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]*$'),
  name             text NOT NULL,
  price_cents      integer NOT NULL CHECK (price_cents > 0),
  currency         text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  billing_interval text NOT NULL DEFAULT 'month' CHECK (billing_interval IN ('month', 'year')),
  quality          text NOT NULL CHECK (quality IN ('SD', 'HD', 'UHD')),
  screens          smallint NOT NULL CHECK (screens BETWEEN 1 AND 8),
  has_ads          boolean NOT NULL,
  active           boolean NOT NULL DEFAULT true,
  sort_order       smallint NOT NULL DEFAULT 0,
  -- monthly-normalized price used by every MRR figure (annual ÷ 12)
  monthly_cents    numeric(12, 2) GENERATED ALWAYS AS
                     (CASE billing_interval WHEN 'year' THEN price_cents / 12.0 ELSE price_cents END) STORED
);
INSERT INTO plans (code, name, price_cents, billing_interval, quality, screens, has_ads, sort_order) VALUES
  ('standard_with_ads', 'Standard with ads',  799, 'month', 'HD',  2, true,  1),
  ('standard',          'Standard',          1799, 'month', 'HD',  2, false, 2),
  ('premium',           'Premium',           2499, 'month', 'UHD', 4, false, 3);

CREATE TABLE subscriptions (
  id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id              bigint NOT NULL REFERENCES users (id),
  plan_id              integer NOT NULL REFERENCES plans (id),
  status               text NOT NULL CHECK (status IN ('incomplete', 'active', 'past_due', 'canceled')),
  created_at           timestamptz NOT NULL DEFAULT now(),
  current_period_start timestamptz NOT NULL,
  current_period_end   timestamptz NOT NULL,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  pending_plan_id      integer REFERENCES plans (id), -- a downgrade waiting for period end
  ended_at             timestamptz,
  -- voluntary (cancel at period end), involuntary (dunning ran out), expired (first payment never succeeded)
  end_reason           text CHECK (end_reason IN ('voluntary', 'involuntary', 'expired')),
  CHECK (current_period_end > current_period_start),
  CHECK ((status = 'canceled') = (ended_at IS NOT NULL)),
  CHECK ((status = 'canceled') = (end_reason IS NOT NULL)),
  CHECK (pending_plan_id IS NULL OR pending_plan_id <> plan_id)
);
-- At most one live (not canceled) subscription per customer: a returning customer gets a new row after the old ended.
CREATE UNIQUE INDEX subscriptions_one_live_per_user ON subscriptions (user_id) WHERE status <> 'canceled';
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, created_at);
CREATE INDEX subscriptions_status_idx ON subscriptions (status, plan_id);

-- Every state change, with the subscription's monthly-normalized MRR after it (0 unless active or past_due), so
-- MRR at any instant is the sum over subscriptions of mrr_cents of their latest event at or before that instant.
CREATE TABLE subscription_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id bigint NOT NULL REFERENCES subscriptions (id),
  user_id         bigint NOT NULL REFERENCES users (id),
  at              timestamptz NOT NULL,
  type            text NOT NULL CHECK (type IN ('created', 'activated', 'renewed', 'payment_failed', 'past_due',
                    'recovered', 'plan_changed', 'downgrade_scheduled', 'cancel_requested', 'cancel_reverted',
                    'canceled', 'expired', 'refunded')),
  from_status     text CHECK (from_status IN ('incomplete', 'active', 'past_due', 'canceled')),
  to_status       text NOT NULL CHECK (to_status IN ('incomplete', 'active', 'past_due', 'canceled')),
  plan_id         integer NOT NULL REFERENCES plans (id),
  mrr_cents       numeric(12, 2) NOT NULL CHECK (mrr_cents >= 0),
  data            jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX subscription_events_sub_idx ON subscription_events (subscription_id, at, id);
CREATE INDEX subscription_events_user_idx ON subscription_events (user_id, at);
CREATE INDEX subscription_events_at_idx ON subscription_events (at);

CREATE TABLE payments (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         bigint NOT NULL REFERENCES users (id),
  subscription_id bigint NOT NULL REFERENCES subscriptions (id),
  kind            text NOT NULL CHECK (kind IN ('initial', 'renewal', 'proration')),
  period_start    timestamptz NOT NULL,
  period_end      timestamptz NOT NULL,
  attempt         smallint NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 10),
  amount_cents    integer NOT NULL CHECK (amount_cents > 0),
  currency        text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
  idempotency_key text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 8 AND 200),
  failure_reason  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  settled_at      timestamptz,
  refunded_at     timestamptz,
  refund_cents    integer CHECK (refund_cents > 0),
  CHECK (period_end > period_start),
  CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
  CHECK ((status = 'refunded') = (refunded_at IS NOT NULL AND refund_cents IS NOT NULL)),
  CHECK (refund_cents IS NULL OR refund_cents <= amount_cents),
  CHECK (status = 'pending' OR settled_at IS NOT NULL)
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at);
CREATE INDEX payments_subscription_idx ON payments (subscription_id, period_start, attempt);
CREATE INDEX payments_status_idx ON payments (status, created_at);

-- ── activity ───────────────────────────────────────────────────────────────────────────────────────────────────
CREATE TABLE visits (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  visitor_id     uuid NOT NULL,
  user_id        bigint REFERENCES users (id),
  at             timestamptz NOT NULL,
  path           text NOT NULL CHECK (path ~ '^/'),
  referrer_class text NOT NULL CHECK (referrer_class IN ('direct', 'search', 'social', 'email', 'ads', 'partner', 'internal')),
  simulated      boolean NOT NULL DEFAULT false
);
CREATE INDEX visits_at_idx ON visits (at);
CREATE INDEX visits_user_idx ON visits (user_id, at) WHERE user_id IS NOT NULL;
CREATE INDEX visits_visitor_idx ON visits (visitor_id, at);

CREATE TABLE watch_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         bigint NOT NULL REFERENCES users (id),
  title_id        bigint NOT NULL REFERENCES titles (id), -- RESTRICT: viewing history keeps its titles
  started_at      timestamptz NOT NULL,
  seconds_watched integer NOT NULL CHECK (seconds_watched >= 0 AND seconds_watched <= 86400),
  completed       boolean NOT NULL DEFAULT false
);
CREATE INDEX watch_events_user_idx ON watch_events (user_id, started_at);
CREATE INDEX watch_events_title_idx ON watch_events (title_id);
CREATE INDEX watch_events_started_idx ON watch_events (started_at);
