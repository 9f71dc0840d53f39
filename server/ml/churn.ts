// Churn prediction (README "Recommendations and churn prediction (server/ml)"): the features and the label come from
// SQL (churn_features / churn_labels, migration 0019); a logistic regression (ml-logistic-regression) on standardized
// features is trained on earlier cutoffs and evaluated on a later one beside a recency-only heuristic (days since the
// last viewing); every model is kept in churn_models; scoring writes churn_scores with each subscriber's top reasons.
import sql from 'sql-template-tag';
import { Matrix } from 'ml-matrix';
import LogisticRegressionTwoClasses from 'ml-logistic-regression/src/logreg_2classes.js';
import type { Db, Queryable } from '../db/index.ts';
import { rngFor } from '../../etl/simulator/rng.ts';
import { rocAuc, prAuc, calibration, type CalibrationBin } from './auc.ts';

/** The model's inputs, in order: the numeric columns of churn_features(). */
export const FEATURES = [
  'tenure_days', 'price', 'plan_with_ads', 'plan_premium', 'plan_changes', 'failed_payments_90d',
  'days_since_last_watch', 'watch_hours_7d', 'watch_hours_30d', 'watch_trend_30d', 'past_cancellations', 'reactivations',
] as const;
export type Feature = typeof FEATURES[number];

export interface FeatureRow extends Record<Feature, number> {
  user_id: number; subscription_id: number; plan_code: string; mrr_cents: number; period_end: Date;
}

const DAY_MS = 86_400_000;
/** Training cutoffs lie this far apart, before the test cutoff (each one's label is known by the test cutoff). */
const TRAIN_CUTOFFS = 4;
const CUTOFF_STEP_DAYS = 30;
/** A label needs up to a month to the period end plus 30 days after it. */
const LABEL_DAYS = 61;

export interface TrainOptions {
  seed: number;
  /** training rows are a seeded sample of at most this many (all rows when fewer) */
  maxTrainRows?: number;
  steps?: number;
  /** the last instant the data covers; default: the latest subscription event, at most now */
  dataEnd?: Date;
  log?: (line: string) => void;
}

export interface ChurnEvaluation {
  auc: number; pr_auc: number;
  baseline: { auc: number; pr_auc: number };
  train_rows: number; train_positives: number; sample_rows: number; test_rows: number; test_positives: number; train_ms: number;
}

export interface TrainedModel {
  algorithm: string; seed: number; trainCutoffs: Date[]; testCutoff: Date;
  features: Feature[]; means: number[]; stds: number[]; weights: number[]; intercept: number;
  metrics: ChurnEvaluation;
  calibration: (CalibrationBin & { scorer: 'model' | 'heuristic' })[];
}

export async function loadFeatures(q: Queryable, cutoff: Date): Promise<FeatureRow[]> {
  return q.query<FeatureRow>(sql`SELECT * FROM churn_features(${cutoff}) ORDER BY user_id`);
}

export async function loadLabeled(q: Queryable, cutoff: Date, observedUntil: Date): Promise<(FeatureRow & { churned: boolean })[]> {
  await q.query(`SET LOCAL jit = off`); // compiled per monthly partition, JIT costs more than it saves (README "Partitions")
  return q.query(sql`SELECT f.*, l.churned FROM churn_features(${cutoff}) f JOIN churn_labels(${cutoff}, ${observedUntil}) l USING (user_id)
    WHERE l.churned IS NOT NULL ORDER BY f.user_id`);
}

export async function dataEndOf(q: Queryable, now = new Date()): Promise<Date> {
  const r = await q.one<{ end: Date | null }>(sql`SELECT least(max(at), ${now}::timestamptz) AS end FROM subscription_events`);
  return r?.end ?? now;
}

/** The test cutoff (its labels known by dataEnd) and the earlier training cutoffs (their labels known by the test cutoff). */
export function cutoffsFor(dataEnd: Date): { test: Date; train: Date[] } {
  const test = new Date(Math.floor((dataEnd.getTime() - LABEL_DAYS * DAY_MS) / DAY_MS) * DAY_MS);
  const train = Array.from({ length: TRAIN_CUTOFFS }, (_, k) => new Date(test.getTime() - (LABEL_DAYS + k * CUTOFF_STEP_DAYS) * DAY_MS));
  return { test, train: train.reverse() };
}

const SQL_TIMEOUT_MS = 600_000;

/** Tables never analyzed (just bulk-loaded, before autovacuum came by) plan badly: analyze those the features read. A
 *  partitioned table counts as never analyzed when one of its partitions is; analyzing it covers its partitions and
 *  itself (which autovacuum never analyzes). */
async function ensureStatistics(db: Db) {
  const missing = await db.query<{ relname: string }>(`SELECT t AS relname
    FROM unnest(ARRAY['subscriptions', 'subscription_events', 'payments', 'watch_events']) AS t
    WHERE EXISTS (SELECT 1 FROM pg_partition_tree(t::regclass) p JOIN pg_stat_user_tables s ON s.relid = p.relid
                  WHERE p.isleaf AND s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup + s.n_mod_since_analyze > 0)`);
  for (const t of missing) await db.query(`ANALYZE ${t.relname}`);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Trains on the training cutoffs and evaluates on the test cutoff; nothing is written. */
export async function trainChurnModel(db: Db, opts: TrainOptions): Promise<TrainedModel> {
  const log = opts.log ?? (() => {});
  const dataEnd = opts.dataEnd ?? await dataEndOf(db);
  const { test: testCutoff, train: trainCutoffs } = cutoffsFor(dataEnd);
  const t0 = performance.now();
  await ensureStatistics(db);
  // the cutoffs side by side; the feature SQL may run longer than the pool's default statement timeout
  const read = (cutoff: Date, until: Date) => db.tx((q) => loadLabeled(q, cutoff, until), { readOnly: true, statementTimeoutMs: SQL_TIMEOUT_MS });
  const sets = await Promise.all([...trainCutoffs.map((c) => read(c, testCutoff)), read(testCutoff, dataEnd)]);
  const testRows = sets.pop()!;
  const all = sets.flat();
  // Case-control sample (seeded): every churned row up to a quarter of the sample, negatives filling the rest. The
  // fitted log-odds are then off by log(positive rate / negative rate) of the sampling, taken off the intercept, so
  // the probabilities stay calibrated to the population.
  const maxRows = opts.maxTrainRows ?? 8_000;
  const pos = all.filter((r) => r.churned), neg = all.filter((r) => !r.churned);
  const keepPos = Math.min(pos.length, Math.max(Math.floor(maxRows / 4), maxRows - neg.length));
  const keepNeg = Math.min(neg.length, maxRows - keepPos);
  const r = rngFor(opts.seed, 0x636875, 0);
  const train = [...sample(pos, keepPos, r), ...sample(neg, keepNeg, r)];
  const offset = pos.length && neg.length && keepNeg ? Math.log((keepPos / pos.length) / (keepNeg / neg.length)) : 0;
  if (!pos.length || !neg.length) {
    throw new Error(`not enough history to train a churn model: ${all.length} training rows with ${pos.length} churned (cutoffs ${trainCutoffs.map(day).join(', ')}; the data end ${day(dataEnd)})`);
  }
  log(`churn: ${all.length} training rows (${pos.length} churned; a sample of ${train.length} is fitted) at ${trainCutoffs.map(day).join(', ')}; ${testRows.length} test rows at ${day(testCutoff)}`);

  const k = FEATURES.length;
  const means = FEATURES.map((f) => train.reduce((s, r) => s + r[f], 0) / train.length);
  const stds = FEATURES.map((f, i) => Math.sqrt(train.reduce((s, r) => s + (r[f] - means[i]) ** 2, 0) / train.length) || 1);
  const design = (rows: FeatureRow[]) => new Matrix(rows.map((r) => [1, ...FEATURES.map((f, i) => (r[f] - means[i]) / stds[i])]));
  const X = design(train);
  const Y = Matrix.columnVector(train.map((r) => (r.churned ? 1 : 0)));
  // the library ascends the summed gradient: a step of 4/n is a mean-gradient step of 4, stable for standardized inputs
  const lr = new LogisticRegressionTwoClasses({ numSteps: opts.steps ?? 150, learningRate: 4 / train.length });
  lr.train(X, Y);
  const w = lr.weights!.to1DArray();
  const trainMs = Math.round(performance.now() - t0);

  const testProbs = testRows.length ? design(testRows).mmul(Matrix.columnVector([w[0] - offset, ...w.slice(1)])).to1DArray().map(sigmoid) : [];
  const testLabels = testRows.map((r) => (r.churned ? 1 : 0));
  // the heuristic ranks by days since the last viewing; as a probability it is the training churn rate of its decile
  const recency = testRows.map((r) => r.days_since_last_watch);
  const heuristicProbs = recencyRates(all)(recency);
  const metrics: ChurnEvaluation = {
    auc: round4(rocAuc(testProbs, testLabels)), pr_auc: round4(prAuc(testProbs, testLabels)),
    baseline: { auc: round4(rocAuc(recency, testLabels)), pr_auc: round4(prAuc(recency, testLabels)) },
    train_rows: all.length, train_positives: pos.length, sample_rows: train.length, test_rows: testRows.length,
    test_positives: testLabels.filter(Boolean).length, train_ms: trainMs,
  };
  return {
    algorithm: 'ml-logistic-regression', seed: opts.seed, trainCutoffs, testCutoff, features: [...FEATURES], means, stds,
    intercept: w[0] - offset, weights: w.slice(1, k + 1), metrics,
    calibration: [
      ...calibration(testProbs, testLabels).map((b) => ({ ...b, scorer: 'model' as const })),
      ...calibration(heuristicProbs, testLabels).map((b) => ({ ...b, scorer: 'heuristic' as const })),
    ],
  };
}

/** `n` of `rows` drawn without replacement (partial Fisher-Yates), in the order drawn. */
function sample<T>(rows: T[], n: number, r: () => number): T[] {
  const a = rows.slice();
  for (let i = 0; i < n; i++) { const j = i + Math.floor(r() * (a.length - i)); [a[i], a[j]] = [a[j], a[i]]; }
  return a.slice(0, n);
}

/** Days since the last viewing → the training churn rate of its decile (edges from the training rows). */
function recencyRates(train: (FeatureRow & { churned: boolean })[]): (days: number[]) => number[] {
  const sorted = train.map((r) => [r.days_since_last_watch, r.churned ? 1 : 0] as const).sort((a, b) => a[0] - b[0]);
  const edges: number[] = [], rates: number[] = [];
  for (let b = 0; b < 10; b++) {
    const part = sorted.slice(Math.floor((b * sorted.length) / 10), Math.floor(((b + 1) * sorted.length) / 10));
    if (!part.length) continue;
    edges.push(part[part.length - 1][0]);
    rates.push(part.reduce((s, x) => s + x[1], 0) / part.length);
  }
  return (days) => days.map((d) => { const i = edges.findIndex((e) => d <= e); return rates[i < 0 ? rates.length - 1 : i]; });
}

export async function saveModel(q: Queryable, m: TrainedModel): Promise<number> {
  const row = await q.one<{ id: number }>(sql`INSERT INTO churn_models (seed, algorithm, train_cutoffs, test_cutoff, features, means, stds, weights, intercept, metrics, calibration)
    VALUES (${m.seed}, ${m.algorithm}, ${m.trainCutoffs}, ${m.testCutoff}, ${m.features}, ${m.means}, ${m.stds}, ${m.weights}, ${m.intercept},
            ${JSON.stringify(m.metrics)}, ${JSON.stringify(m.calibration)}) RETURNING id`);
  return row!.id;
}

/** Trains, evaluates and stores a model; returns it with its id. */
export async function trainAndSave(db: Db, opts: TrainOptions): Promise<TrainedModel & { id: number }> {
  const m = await trainChurnModel(db, opts);
  return { ...m, id: await saveModel(db, m) };
}

interface StoredModel { id: number; features: Feature[]; means: number[]; stds: number[]; weights: number[]; intercept: number }

/** Scores every current subscriber (live at `now`) with the latest model, replacing churn_scores in one transaction.
 *  Returns undefined when no model was trained yet. */
export async function scoreSubscribers(db: Db, opts: { now?: Date } = {}): Promise<{ modelId: number; scored: number; ms: number } | undefined> {
  const t0 = performance.now();
  const now = opts.now ?? new Date();
  const model = await db.one<StoredModel>(sql`SELECT id, features, means, stds, weights, intercept FROM churn_models ORDER BY trained_at DESC, id DESC LIMIT 1`);
  if (!model) return undefined;
  await ensureStatistics(db);
  return db.tx(async (q) => {
    const rows = await loadFeatures(q, now);
    const scored = rows.map((r) => {
      const contributions = model.features.map((f, i) => ({ f, x: r[f], c: model.weights[i] * (r[f] - model.means[i]) / model.stds[i] }));
      const risk = sigmoid(model.intercept + contributions.reduce((s, x) => s + x.c, 0));
      const reasons = contributions.filter((x) => x.c > 0.05).sort((a, b) => b.c - a.c)
        .map((x) => reasonInWords(x.f, x.x)).filter((s): s is string => !!s).slice(0, 3);
      return {
        user_id: r.user_id, subscription_id: r.subscription_id, plan_code: r.plan_code, risk: round6(risk), mrr_cents: r.mrr_cents,
        reasons, features: Object.fromEntries(model.features.map((f) => [f, round4(r[f])])),
      };
    });
    await q.query(`DELETE FROM churn_scores`);
    const at = now.toISOString();
    await q.copyIn(`COPY churn_scores (user_id, subscription_id, model_id, scored_at, plan_code, risk, mrr_cents, reasons, features) FROM STDIN`,
      async (stream) => {
        stream.end(scored.map((x) => [x.user_id, x.subscription_id, model.id, at, copyText(x.plan_code), x.risk, x.mrr_cents,
          copyText(pgTextArray(x.reasons)), copyText(JSON.stringify(x.features))].join('\t') + '\n').join(''));
      });
    return { modelId: model.id, scored: scored.length, ms: Math.round(performance.now() - t0) };
  }, { statementTimeoutMs: SQL_TIMEOUT_MS });
}

/** A value in COPY's text format: backslash, tab and line breaks escaped. */
const copyText = (v: string) => v.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
/** A text[] literal: every element quoted, quotes and backslashes escaped. */
const pgTextArray = (xs: string[]) => `{${xs.map((x) => `"${x.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** A feature's value as a reason a manager reads ("no viewing for 23 days"); undefined when it says nothing. */
export function reasonInWords(f: Feature, x: number): string | undefined {
  switch (f) {
    case 'days_since_last_watch': return `no viewing for ${plural(Math.round(x), 'day')}`;
    case 'watch_hours_7d': return x < 0.05 ? 'nothing watched in the last 7 days' : `only ${x.toFixed(1)} h watched in the last 7 days`;
    case 'watch_hours_30d': return x < 0.05 ? 'nothing watched in the last 30 days' : `only ${x.toFixed(1)} h watched in the last 30 days`;
    case 'watch_trend_30d': return x < 0 ? `viewing down ${(-x).toFixed(1)} h on the month before` : `viewing up ${x.toFixed(1)} h on the month before`;
    case 'failed_payments_90d': return x > 0 ? `${plural(x, 'failed payment')} in the last 90 days` : undefined;
    case 'tenure_days': return x < 100 ? `new subscriber (${plural(Math.round(x), 'day')})` : `subscribed for ${plural(Math.round(x), 'day')}`;
    case 'price': return `pays $${x.toFixed(2)} a month`;
    case 'plan_with_ads': return x ? 'on the Standard with ads plan' : undefined;
    case 'plan_premium': return x ? 'on the Premium plan' : undefined;
    case 'plan_changes': return x > 0 ? `changed plan ${plural(x, 'time')}` : 'never changed plan';
    case 'past_cancellations': return x > 0 ? `cancelled ${plural(x, 'time')} before` : undefined;
    case 'reactivations': return x > 0 ? `came back ${plural(x, 'time')} after cancelling` : undefined;
  }
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
const round6 = (x: number) => Math.round(x * 1_000_000) / 1_000_000;
const day = (d: Date) => d.toISOString().slice(0, 10);
