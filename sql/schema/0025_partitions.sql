-- Partitioned event tables (README "Database and migrations", "Partitions"): watch_events, visits, payments and
-- subscription_events become PARTITION BY RANGE on their time column, one partition a month named <table>_YYYY_MM,
-- plus <table>_default, so that no write ever fails for want of a partition. The partitions.ensure job
-- (server/db/partitions.ts) creates months ahead through ensure_month_partition below, which also moves rows a DEFAULT
-- partition holds for the new month into it. Queries that bound the time column (the incremental mart refreshes)
-- read only the months they need; an old month can be detached (README "Partitions").
--
-- A key of a partitioned table must contain its partition key: the primary keys become (id, <time column>). The one
-- key that must stay global, payments.idempotency_key ("a charge is made once per key"), moves to payment_keys, an
-- ordinary table kept by payments' own triggers (every insert claims its keys, in the same statement; a duplicate key
-- fails the statement, whichever month it falls in), and payment_charge_intents now references it.

-- One month's partition of `p_parent`, created if missing. Rows the DEFAULT partition holds for that month are moved
-- into it (PostgreSQL refuses to create a partition whose range rows of the DEFAULT partition fall in). The move goes
-- partition to partition, so no trigger of the parent fires: the rows are the same rows, ids included. Returns the
-- number of rows moved, or NULL when the partition already existed.
CREATE FUNCTION ensure_month_partition(p_parent regclass, p_month date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  lo date := date_trunc('month', p_month)::date;
  hi date := (date_trunc('month', p_month) + interval '1 month')::date;
  -- the bounds as UTC instants, whatever the session's TimeZone
  lo_at text := to_char(lo, 'YYYY-MM-DD') || ' 00:00:00+00';
  hi_at text := to_char(hi, 'YYYY-MM-DD') || ' 00:00:00+00';
  nsp name;
  rel name;
  part text;
  keycol name;
  def regclass;
  moved bigint := 0;
  cols text;
BEGIN
  SELECT n.nspname, c.relname INTO nsp, rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_parent;
  part := rel || '_' || to_char(lo, 'YYYY_MM');
  IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN RETURN NULL; END IF;
  SELECT a.attname INTO keycol FROM pg_partitioned_table pt
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
   WHERE pt.partrelid = p_parent AND pt.partstrat = 'r' AND pt.partnatts = 1;
  IF keycol IS NULL THEN RAISE EXCEPTION '% is not partitioned by range on one column', p_parent; END IF;
  SELECT i.inhrelid::regclass INTO def FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = p_parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  IF def IS NOT NULL THEN
    EXECUTE format('CREATE TEMP TABLE ensure_month_partition_rows ON COMMIT DROP AS
                      WITH d AS (DELETE FROM %s WHERE %I >= %L AND %I < %L RETURNING *) SELECT * FROM d',
                   def, keycol, lo_at, keycol, hi_at);
    GET DIAGNOSTICS moved = ROW_COUNT;
  END IF;
  EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', nsp, part, p_parent, lo_at, hi_at);
  IF moved > 0 THEN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
     WHERE attrelid = p_parent AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('INSERT INTO %I.%I (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM ensure_month_partition_rows', nsp, part, cols, cols);
    EXECUTE format('ANALYZE %I.%I', nsp, part);
  END IF;
  IF def IS NOT NULL THEN DROP TABLE ensure_month_partition_rows; END IF;
  RETURN moved;
END
$$;

-- Set the unpartitioned tables aside under *_unpartitioned (their sequences and index names too, and without their
-- checks and foreign keys, so the new tables take the old names); their rows move below, then they are dropped.
ALTER TABLE payment_charge_intents DROP CONSTRAINT payment_charge_intents_payment_id_fkey;
DO $$
DECLARE
  t text;
  ix record;
  con name;
BEGIN
  FOREACH t IN ARRAY ARRAY['watch_events', 'visits', 'payments', 'subscription_events'] LOOP
    EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_unpartitioned');
    EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', t || '_id_seq', t || '_unpartitioned_id_seq');
    FOR ix IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = (t || '_unpartitioned')::regclass LOOP
      EXECUTE format('ALTER INDEX %I RENAME TO %I', ix.relname, ix.relname || '_unpartitioned');
    END LOOP;
    FOR con IN SELECT conname FROM pg_constraint WHERE conrelid = (t || '_unpartitioned')::regclass AND contype IN ('c', 'f') LOOP
      EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t || '_unpartitioned', con);
    END LOOP;
  END LOOP;
END
$$;

-- The same columns and checks as before (0001_schema_v1.sql); the primary key now carries the partition key.
CREATE TABLE subscription_events (
  id              bigint GENERATED ALWAYS AS IDENTITY,
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
  data            jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX subscription_events_sub_idx ON subscription_events (subscription_id, at, id);
CREATE INDEX subscription_events_user_idx ON subscription_events (user_id, at);
CREATE INDEX subscription_events_at_idx ON subscription_events (at);

CREATE TABLE payments (
  id              bigint GENERATED ALWAYS AS IDENTITY,
  user_id         bigint NOT NULL REFERENCES users (id),
  subscription_id bigint NOT NULL REFERENCES subscriptions (id),
  kind            text NOT NULL CHECK (kind IN ('initial', 'renewal', 'proration')),
  period_start    timestamptz NOT NULL,
  period_end      timestamptz NOT NULL,
  attempt         smallint NOT NULL DEFAULT 1 CHECK (attempt BETWEEN 1 AND 10),
  amount_cents    integer NOT NULL CHECK (amount_cents > 0),
  currency        text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  status          text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
  idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 8 AND 200),
  failure_reason  text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  settled_at      timestamptz,
  refunded_at     timestamptz,
  refund_cents    integer CHECK (refund_cents > 0),
  CHECK (period_end > period_start),
  CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
  CHECK ((status = 'refunded') = (refunded_at IS NOT NULL AND refund_cents IS NOT NULL)),
  CHECK (refund_cents IS NULL OR refund_cents <= amount_cents),
  CHECK (status = 'pending' OR settled_at IS NOT NULL),
  PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX payments_user_idx ON payments (user_id, created_at);
CREATE INDEX payments_subscription_idx ON payments (subscription_id, period_start, attempt);
CREATE INDEX payments_status_idx ON payments (status, created_at);
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';

CREATE TABLE visits (
  id             bigint GENERATED ALWAYS AS IDENTITY,
  visitor_id     uuid NOT NULL,
  user_id        bigint REFERENCES users (id),
  at             timestamptz NOT NULL,
  path           text NOT NULL CHECK (path ~ '^/'),
  referrer_class text NOT NULL CHECK (referrer_class IN ('direct', 'search', 'social', 'email', 'ads', 'partner', 'internal')),
  simulated      boolean NOT NULL DEFAULT false,
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX visits_at_idx ON visits (at);
CREATE INDEX visits_user_idx ON visits (user_id, at) WHERE user_id IS NOT NULL;
CREATE INDEX visits_visitor_idx ON visits (visitor_id, at);

CREATE TABLE watch_events (
  id              bigint GENERATED ALWAYS AS IDENTITY,
  user_id         bigint NOT NULL REFERENCES users (id),
  title_id        bigint NOT NULL REFERENCES titles (id), -- RESTRICT: viewing history keeps its titles
  started_at      timestamptz NOT NULL,
  seconds_watched integer NOT NULL CHECK (seconds_watched >= 0 AND seconds_watched <= 86400),
  completed       boolean NOT NULL DEFAULT false,
  PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX watch_events_user_idx ON watch_events (user_id, started_at);
CREATE INDEX watch_events_title_idx ON watch_events (title_id);
CREATE INDEX watch_events_started_idx ON watch_events (started_at);
CREATE INDEX watch_events_started_title_idx ON watch_events (started_at) INCLUDE (title_id);

-- Every idempotency key ever charged, once: the global unique key payments cannot carry. payment_id and created_at
-- find the payment (created_at prunes to its month). A detached month's keys stay here, so an old key is never
-- charged again.
CREATE TABLE payment_keys (
  idempotency_key text PRIMARY KEY,
  payment_id      bigint NOT NULL UNIQUE,
  created_at      timestamptz NOT NULL
);
-- Inserting payments claims their keys in the same statement (a duplicate, in any month, fails it); deleting
-- payments releases theirs (their charge intents go with them). ENABLE ALWAYS: bulk loads that run with
-- session_replication_role = replica (server/db/bulk.ts) keep them.
CREATE FUNCTION payment_keys_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO payment_keys (idempotency_key, payment_id, created_at) SELECT idempotency_key, id, created_at FROM new_rows;
  RETURN NULL;
END
$$;
CREATE FUNCTION payment_keys_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM payment_keys k USING old_rows o WHERE k.idempotency_key = o.idempotency_key AND k.payment_id = o.id;
  RETURN NULL;
END
$$;
-- A payment keeps its key, id and month: changing them would split it from its payment_keys row.
CREATE FUNCTION payment_keys_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'payment %: idempotency_key, id and created_at never change', OLD.id USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER payments_claim_keys AFTER INSERT ON payments REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION payment_keys_claim();
CREATE TRIGGER payments_release_keys AFTER DELETE ON payments REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION payment_keys_release();
CREATE TRIGGER payments_keys_fixed BEFORE UPDATE ON payments FOR EACH ROW
  WHEN (OLD.idempotency_key IS DISTINCT FROM NEW.idempotency_key OR OLD.id <> NEW.id OR OLD.created_at IS DISTINCT FROM NEW.created_at)
  EXECUTE FUNCTION payment_keys_fixed();
ALTER TABLE payments ENABLE ALWAYS TRIGGER payments_claim_keys, ENABLE ALWAYS TRIGGER payments_release_keys,
  ENABLE ALWAYS TRIGGER payments_keys_fixed;

-- DEFAULT partitions, and a partition for every month that holds rows, and for this month and the three after it.
DO $$
DECLARE
  t text;
  k text;
  m date;
  lo date;
  hi date;
BEGIN
  FOR t, k IN VALUES ('watch_events', 'started_at'), ('visits', 'at'), ('payments', 'created_at'), ('subscription_events', 'at') LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', t || '_default', t);
    EXECUTE format('SELECT min(%I AT TIME ZONE ''UTC'')::date, max(%I AT TIME ZONE ''UTC'')::date FROM %I',
                   k, k, t || '_unpartitioned') INTO lo, hi;
    lo := date_trunc('month', least(coalesce(lo, 'infinity'), (now() AT TIME ZONE 'UTC')::date))::date;
    hi := greatest(coalesce(hi, '-infinity'), (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months')::date);
    m := lo;
    WHILE m <= hi LOOP
      PERFORM ensure_month_partition(t::regclass, m);
      m := (m + interval '1 month')::date;
    END LOOP;
    EXECUTE format('INSERT INTO %I OVERRIDING SYSTEM VALUE SELECT * FROM %I', t, t || '_unpartitioned');
    EXECUTE format('SELECT setval(%L, last_value, is_called) FROM %I', pg_get_serial_sequence(t, 'id'), t || '_unpartitioned_id_seq');
    EXECUTE format('DROP TABLE %I', t || '_unpartitioned');
  END LOOP;
END
$$;

ALTER TABLE payment_charge_intents ADD CONSTRAINT payment_charge_intents_payment_id_fkey
  FOREIGN KEY (payment_id) REFERENCES payment_keys (payment_id) ON DELETE CASCADE;

-- The viewing-history change notifications (0021_subscriptions_notify.sql) went with the old table.
CREATE TRIGGER watch_events_insert_notify AFTER INSERT ON watch_events REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows();
CREATE TRIGGER watch_events_update_notify AFTER UPDATE ON watch_events REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows();
CREATE TRIGGER watch_events_delete_notify AFTER DELETE ON watch_events REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows();
CREATE TRIGGER watch_events_truncate_notify AFTER TRUNCATE ON watch_events
  FOR EACH STATEMENT EXECUTE FUNCTION notify_user_rows();

ANALYZE watch_events, visits, payments, subscription_events, payment_keys;

-- The churn features and label (0019_churn.sql), the same values, with their per-customer lookups of payments and
-- viewing turned into joins: payments is partitioned on created_at, which those lookups cannot bound, so each one
-- probed every month's index once per customer (several times slower than before at a year of history). Now:
-- the paid period's end is one aggregate over the payments whose period contains the cutoff (a later period_end is all
-- `greatest` keeps); the last viewing comes from the 60 days the viewing features read already, and only customers
-- who watched nothing in them look further back; the label's "paid again" is one join.
CREATE OR REPLACE FUNCTION churn_features(p_cutoff timestamptz)
RETURNS TABLE (
  user_id bigint, subscription_id bigint, plan_code text, mrr_cents numeric, period_end timestamptz,
  tenure_days double precision, price double precision, plan_with_ads double precision, plan_premium double precision,
  plan_changes double precision, failed_payments_90d double precision, days_since_last_watch double precision,
  watch_hours_7d double precision, watch_hours_30d double precision, watch_trend_30d double precision,
  past_cancellations double precision, reactivations double precision
) LANGUAGE sql STABLE AS $$
  WITH paid AS (
    SELECT p.subscription_id, max(p.period_end) AS period_end FROM payments p
    WHERE p.period_start <= p_cutoff AND p.period_end > p_cutoff AND p.status = 'succeeded' AND p.kind IN ('initial', 'renewal')
    GROUP BY 1
  ), pop AS (
    SELECT s.user_id, s.id AS subscription_id, e.plan_id, e.mrr_cents, s.created_at AS sub_created,
           greatest(p_cutoff, paid.period_end) AS period_end
    FROM subscriptions s
    CROSS JOIN LATERAL (
      SELECT e.plan_id, e.mrr_cents, e.to_status FROM subscription_events e
      WHERE e.subscription_id = s.id AND e.at <= p_cutoff
      ORDER BY e.at DESC, e.id DESC LIMIT 1
    ) e
    LEFT JOIN paid ON paid.subscription_id = s.id
    WHERE s.created_at <= p_cutoff AND (s.ended_at IS NULL OR s.ended_at > p_cutoff)
      AND e.to_status IN ('active', 'past_due')
  ), failed AS (
    SELECT p.user_id, count(*) AS n FROM payments p
    WHERE p.status = 'failed' AND p.created_at > p_cutoff - interval '90 days' AND p.created_at <= p_cutoff
    GROUP BY 1
  ), changes AS (
    SELECT e.user_id, count(*) AS n FROM subscription_events e
    WHERE e.type = 'plan_changed' AND e.at <= p_cutoff
    GROUP BY 1
  ), history AS (
    SELECT s.user_id,
           count(*) FILTER (WHERE s.end_reason IN ('voluntary', 'involuntary') AND s.ended_at <= p_cutoff) AS cancellations,
           count(*) FILTER (WHERE s.created_at <= p_cutoff AND EXISTS (
             SELECT 1 FROM subscriptions o
             WHERE o.user_id = s.user_id AND o.end_reason IN ('voluntary', 'involuntary') AND o.ended_at <= s.created_at))
             AS reactivations
    FROM subscriptions s
    WHERE s.created_at <= p_cutoff
    GROUP BY 1
  ), watch AS (
    SELECT we.user_id,
           coalesce(sum(we.seconds_watched) FILTER (WHERE we.started_at > p_cutoff - interval '7 days'), 0) / 3600.0 AS h7,
           coalesce(sum(we.seconds_watched) FILTER (WHERE we.started_at > p_cutoff - interval '30 days'), 0) / 3600.0 AS h30,
           coalesce(sum(we.seconds_watched) FILTER (WHERE we.started_at <= p_cutoff - interval '30 days'
                                                      AND we.started_at > p_cutoff - interval '60 days'), 0) / 3600.0 AS h60_30,
           max(we.started_at) AS last_watch
    FROM watch_events we
    WHERE we.started_at <= p_cutoff AND we.started_at > p_cutoff - interval '60 days'
    GROUP BY 1
  )
  SELECT pop.user_id, pop.subscription_id, pl.code, pop.mrr_cents, pop.period_end,
         extract(epoch FROM p_cutoff - pop.sub_created) / 86400,
         pl.monthly_cents / 100.0,
         (pl.code = 'standard_with_ads')::int, (pl.code = 'premium')::int,
         coalesce(changes.n, 0), coalesce(failed.n, 0),
         extract(epoch FROM p_cutoff - coalesce(w.last_watch, (SELECT max(we.started_at) FROM watch_events we
                                                 WHERE we.user_id = pop.user_id AND we.started_at <= p_cutoff - interval '60 days'),
                                                pop.sub_created)) / 86400,
         coalesce(w.h7, 0), coalesce(w.h30, 0), coalesce(w.h30 - w.h60_30, 0),
         coalesce(h.cancellations, 0), coalesce(h.reactivations, 0)
  FROM pop
  JOIN plans pl ON pl.id = pop.plan_id
  LEFT JOIN failed ON failed.user_id = pop.user_id
  LEFT JOIN changes ON changes.user_id = pop.user_id
  LEFT JOIN history h ON h.user_id = pop.user_id
  LEFT JOIN watch w ON w.user_id = pop.user_id
$$;

CREATE OR REPLACE FUNCTION churn_labels(p_cutoff timestamptz, p_observed_until timestamptz)
RETURNS TABLE (user_id bigint, churned boolean) LANGUAGE sql STABLE AS $$
  WITH f AS (SELECT f.user_id, f.period_end FROM churn_features(p_cutoff) f),
  paid_again AS (
    SELECT DISTINCT f.user_id FROM f
    JOIN payments p ON p.user_id = f.user_id AND p.status = 'succeeded'
                   AND p.period_end > f.period_end AND p.period_start < f.period_end + interval '30 days'
  )
  SELECT f.user_id,
         CASE WHEN f.period_end + interval '30 days' > p_observed_until THEN NULL ELSE a.user_id IS NULL END
  FROM f LEFT JOIN paid_again a ON a.user_id = f.user_id
$$;
