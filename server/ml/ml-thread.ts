// A worker thread's side of runMlTask (worker.ts): opens its own pool on the database given, runs one task, posts the
// result (or the error) and closes the pool. The tasks are the model work of the scheduled jobs and of a first start.
import { parentPort, workerData } from 'node:worker_threads';
import { createDb, type Db } from '../db/index.ts';
import { trainAndSave, scoreSubscribers, dataEndOf } from './churn.ts';
import { refreshRecommendations, evaluateRecommendations } from './recommend.ts';

type Log = (l: string) => void;

/** The seed of scheduled and first-start training (the CLI takes --seed). */
export const DEFAULT_SEED = 42;

/** Trains and stores a churn model, scores the subscribers with it, and refreshes the recommendations. */
export async function trainAll(db: Db, seed: number, log: (l: string) => void) {
  const m = await trainAndSave(db, { seed, log });
  log(`churn model ${m.id}: AUC ${m.metrics.auc} (recency heuristic ${m.metrics.baseline.auc}), PR-AUC ${m.metrics.pr_auc} (${m.metrics.baseline.pr_auc}); trained in ${m.metrics.train_ms} ms on ${m.metrics.sample_rows} of ${m.metrics.train_rows} rows`);
  const s = await scoreSubscribers(db);
  if (s) log(`churn scores: ${s.scored} subscribers scored in ${s.ms} ms`);
  const r = await refreshRecommendations(db, { seed });
  log(`recommendations: ${r.titles} titles, ${r.users} users in ${r.ms} ms`);
  return m;
}


export const tasks = {
  /** No churn model yet: train, score, refresh the recommendations and evaluate them once. */
  async firstStart(db: Db, _args: Record<string, never>, log: Log) {
    if (await db.one(`SELECT 1 FROM churn_models LIMIT 1`)) return;
    if (!(await db.one(`SELECT 1 FROM subscription_events LIMIT 1`))) return;
    log('ml: no churn model yet: training and scoring once in the background');
    await trainAll(db, DEFAULT_SEED, (l) => log(`ml: ${l}`));
    // and one evaluation, so the recommendation_quality report has figures from the first day
    const e = await evaluateRecommendations(db, { seed: DEFAULT_SEED });
    log(`ml: recommendations evaluated: hit-rate@10 ${e.hit_rate_at_10} (most popular ${e.baselines.most_popular.hit_rate_at_10})`);
  },
  async recommendations(db: Db, args: { seed: number; now: Date }) {
    return refreshRecommendations(db, args);
  },
  async train(db: Db, args: { now: Date }) {
    const m = await trainAndSave(db, { seed: DEFAULT_SEED, dataEnd: await dataEndOf(db, args.now) });
    return { model: m.id, auc: m.metrics.auc, baseline_auc: m.metrics.baseline.auc, scored: (await scoreSubscribers(db, { now: args.now }))?.scored };
  },
  async score(db: Db, args: { now: Date }, log: Log) {
    let s = await scoreSubscribers(db, { now: args.now });
    if (!s) {
      log('churn.score: no churn model yet: training one first');
      await trainAndSave(db, { seed: DEFAULT_SEED });
      s = await scoreSubscribers(db, { now: args.now });
    }
    return s;
  },
};

export type MlTasks = typeof tasks;

if (parentPort && workerData?.task) {
  const port = parentPort;
  const { url, task, args } = workerData as { url: string; task: keyof MlTasks; args: any };
  // training reads its cutoffs' features in parallel (one connection each); a wait for a connection is no error here
  const db = createDb(url, { max: 6, connectionTimeoutMs: 0, applicationName: 'marquee-ml' });
  let answer: { result?: unknown; error?: string };
  try {
    const run = tasks[task] as (db: Db, args: unknown, log: Log) => Promise<unknown>;
    answer = { result: await run(db, args, (l) => port.postMessage({ log: l })) };
  } catch (e: any) {
    answer = { error: String(e?.message ?? e) };
  }
  // closed before answering: the caller may drop or copy the database as soon as the task is done
  await db.close().catch(() => {});
  port.postMessage(answer);
}
