-- Recommendations (README "Recommendations and churn prediction (server/ml)"): tables the refresh fills
-- (server/ml/recommend.ts) and the pages read, and the evaluation figures the report recommendation_quality shows.

-- Each title's nearest titles: content similarity (TF-IDF over genres, cast, directors, countries, rating, type and
-- the description's full-text lexemes) blended with item-item co-watch similarity from watch_events. Replaced whole
-- by each refresh, in one transaction.
CREATE TABLE rec_title_similar (
  title_id      bigint   NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  rank          smallint NOT NULL CHECK (rank >= 1),
  similar_id    bigint   NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  score         real     NOT NULL CHECK (score >= 0),
  content_score real     NOT NULL CHECK (content_score >= 0),  -- cosine of the two TF-IDF vectors
  cowatch_score real     NOT NULL CHECK (cowatch_score >= 0),  -- co-viewers / sqrt(viewers of each), shrunk for few co-viewers
  PRIMARY KEY (title_id, rank),
  UNIQUE (title_id, similar_id),
  CHECK (similar_id <> title_id)
);

-- What is popular among similar customers (same country and plan) for a subscriber without viewing history.
-- country '' = every country of that plan; plan_code '' = every plan (the last fallback).
CREATE TABLE rec_popular_segment (
  country   text     NOT NULL,
  plan_code text     NOT NULL,
  rank      smallint NOT NULL CHECK (rank >= 1),
  title_id  bigint   NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
  viewers   integer  NOT NULL CHECK (viewers > 0),
  segment_viewers integer NOT NULL CHECK (segment_viewers > 0),
  PRIMARY KEY (country, plan_code, rank)
);

-- One row per refresh: what it built and how long it took.
CREATE TABLE rec_refreshes (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  finished_at timestamptz NOT NULL DEFAULT now(),
  seed        integer     NOT NULL,
  titles      integer     NOT NULL,
  users       integer     NOT NULL,
  pairs       integer     NOT NULL,
  ms          integer     NOT NULL,
  params      jsonb       NOT NULL DEFAULT '{}'
);

-- Each evaluation (time-based split: every user's last distinct titles held out) and its figures per method:
-- the recommender and its baselines.
CREATE TABLE rec_evaluations (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  evaluated_at timestamptz NOT NULL DEFAULT now(),
  seed         integer     NOT NULL,
  users        integer     NOT NULL CHECK (users >= 0),
  held_out     integer     NOT NULL CHECK (held_out >= 1), -- distinct titles held out per user
  catalog      integer     NOT NULL CHECK (catalog >= 0),
  params       jsonb       NOT NULL DEFAULT '{}'
);
CREATE TABLE rec_evaluation_results (
  evaluation_id  bigint NOT NULL REFERENCES rec_evaluations (id) ON DELETE CASCADE,
  method         text   NOT NULL CHECK (method IN ('recommender', 'most_popular', 'random')),
  hit_rate_at_10 double precision NOT NULL CHECK (hit_rate_at_10 BETWEEN 0 AND 1),
  ndcg_at_10     double precision NOT NULL CHECK (ndcg_at_10 BETWEEN 0 AND 1),
  coverage       double precision NOT NULL CHECK (coverage BETWEEN 0 AND 1),
  PRIMARY KEY (evaluation_id, method)
);
