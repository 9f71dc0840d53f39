-- Churn prediction (README "Recommendations and churn prediction (server/ml)"): the features and the label as of a
-- cutoff, in SQL; the trained models, versioned; the latest scores of current subscribers.

-- The population at a cutoff: every subscription live (active or past_due) at that instant — its latest event at or
-- before the cutoff says so — with its plan and MRR then, and the end of the period paid for at the cutoff ("the
-- period end that follows the cutoff"; a past_due subscription's paid period has already ended: the cutoff itself).
-- Features, one row per customer (a customer has at most one live subscription):
--   tenure_days            days since the live subscription was created
--   price                  the plan's monthly price at the cutoff, in dollars
--   plan_with_ads, plan_premium   1/0: the plan at the cutoff (Standard is neither)
--   plan_changes           the customer's plan changes (upgrades and applied downgrades) ever, up to the cutoff
--   failed_payments_90d    failed payment attempts created in the 90 days before the cutoff
--   days_since_last_watch  days since the last viewing started (never watched: since the subscription was created)
--   watch_hours_7d, watch_hours_30d   hours watched in the 7 and 30 days before the cutoff
--   watch_trend_30d        hours in the last 30 days minus hours in the 30 days before those
--   past_cancellations     the customer's earlier subscriptions that ended voluntarily or involuntarily
--   reactivations          the customer's subscriptions created after an earlier one had ended that way
CREATE FUNCTION churn_features(p_cutoff timestamptz)
RETURNS TABLE (
  user_id bigint, subscription_id bigint, plan_code text, mrr_cents numeric, period_end timestamptz,
  tenure_days double precision, price double precision, plan_with_ads double precision, plan_premium double precision,
  plan_changes double precision, failed_payments_90d double precision, days_since_last_watch double precision,
  watch_hours_7d double precision, watch_hours_30d double precision, watch_trend_30d double precision,
  past_cancellations double precision, reactivations double precision
) LANGUAGE sql STABLE AS $$
  WITH pop AS (
    SELECT s.user_id, s.id AS subscription_id, e.plan_id, e.mrr_cents, s.created_at AS sub_created,
           greatest(p_cutoff, (SELECT max(p.period_end) FROM payments p
                               WHERE p.subscription_id = s.id AND p.period_start <= p_cutoff
                                 AND p.status = 'succeeded' AND p.kind IN ('initial', 'renewal'))) AS period_end
    FROM subscriptions s
    CROSS JOIN LATERAL (
      SELECT e.plan_id, e.mrr_cents, e.to_status FROM subscription_events e
      WHERE e.subscription_id = s.id AND e.at <= p_cutoff
      ORDER BY e.at DESC, e.id DESC LIMIT 1
    ) e
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
                                                      AND we.started_at > p_cutoff - interval '60 days'), 0) / 3600.0 AS h60_30
    FROM watch_events we
    WHERE we.started_at <= p_cutoff AND we.started_at > p_cutoff - interval '60 days'
    GROUP BY 1
  )
  SELECT pop.user_id, pop.subscription_id, pl.code, pop.mrr_cents, pop.period_end,
         extract(epoch FROM p_cutoff - pop.sub_created) / 86400,
         pl.monthly_cents / 100.0,
         (pl.code = 'standard_with_ads')::int, (pl.code = 'premium')::int,
         coalesce(changes.n, 0), coalesce(failed.n, 0),
         extract(epoch FROM p_cutoff - coalesce((SELECT max(we.started_at) FROM watch_events we
                                                 WHERE we.user_id = pop.user_id AND we.started_at <= p_cutoff), pop.sub_created)) / 86400,
         coalesce(w.h7, 0), coalesce(w.h30, 0), coalesce(w.h30 - w.h60_30, 0),
         coalesce(h.cancellations, 0), coalesce(h.reactivations, 0)
  FROM pop
  JOIN plans pl ON pl.id = pop.plan_id
  LEFT JOIN failed ON failed.user_id = pop.user_id
  LEFT JOIN changes ON changes.user_id = pop.user_id
  LEFT JOIN history h ON h.user_id = pop.user_id
  LEFT JOIN watch w ON w.user_id = pop.user_id
$$;

-- The label of that population: churned = no paid access within 30 days after its period end, i.e. no succeeded
-- payment of the customer (renewal, recovery or a new subscription) covering any instant of (period_end,
-- period_end + 30 days]. NULL while that window is not over at p_observed_until (the label is not known yet).
CREATE FUNCTION churn_labels(p_cutoff timestamptz, p_observed_until timestamptz)
RETURNS TABLE (user_id bigint, churned boolean) LANGUAGE sql STABLE AS $$
  SELECT f.user_id,
         CASE WHEN f.period_end + interval '30 days' > p_observed_until THEN NULL
              ELSE NOT EXISTS (SELECT 1 FROM payments p
                               WHERE p.user_id = f.user_id AND p.status = 'succeeded'
                                 AND p.period_end > f.period_end AND p.period_start < f.period_end + interval '30 days') END
  FROM churn_features(p_cutoff) f
$$;

-- Every trained model, kept: what it was trained on, its weights (on standardized features: z = (x - mean) / std),
-- and its evaluation on the held-out later cutoff beside the recency-only heuristic.
CREATE TABLE churn_models (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  trained_at    timestamptz NOT NULL DEFAULT now(),
  seed          integer NOT NULL,
  algorithm     text NOT NULL,
  train_cutoffs timestamptz[] NOT NULL,
  test_cutoff   timestamptz NOT NULL,
  features      text[] NOT NULL,
  means         double precision[] NOT NULL,
  stds          double precision[] NOT NULL,
  weights       double precision[] NOT NULL,
  intercept     double precision NOT NULL,
  -- {auc, pr_auc, baseline: {auc, pr_auc}, train_rows, train_positives, sample_rows, test_rows, test_positives, train_ms}
  metrics       jsonb NOT NULL,
  -- [{bin, scorer: model|heuristic, n, predicted, observed}]
  calibration   jsonb NOT NULL,
  CHECK (cardinality(features) = cardinality(weights) AND cardinality(features) = cardinality(means)
         AND cardinality(features) = cardinality(stds))
);
CREATE INDEX churn_models_trained_idx ON churn_models (trained_at DESC, id DESC);

-- The latest scoring run: one row per current subscriber (replaced whole by each run, in one transaction). Only the
-- customer is a foreign key (removing a customer, e.g. the simulator's --reset, removes the row): the subscription
-- and the model ids are what they were when scored, and checking them row by row would double the write.
CREATE TABLE churn_scores (
  user_id         bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  subscription_id bigint NOT NULL,
  model_id        bigint NOT NULL,
  scored_at       timestamptz NOT NULL,
  plan_code       text NOT NULL,
  risk            double precision NOT NULL CHECK (risk >= 0 AND risk <= 1),
  mrr_cents       numeric(12, 2) NOT NULL CHECK (mrr_cents >= 0),
  -- the largest positive contributions to the risk, in words, largest first
  reasons         text[] NOT NULL,
  features        jsonb NOT NULL
);
CREATE INDEX churn_scores_risk_idx ON churn_scores (risk DESC);
