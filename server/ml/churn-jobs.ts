// When the churn model runs without anyone asking: the scheduled jobs (server/jobs/registry.ts) and the first start.
import type { Db } from '../db/index.ts';
import type { Job } from '../jobs/index.ts';
import { trainAndSave, scoreSubscribers, dataEndOf } from './churn.ts';
import { refreshRecommendations, evaluateRecommendations } from './recommend.ts';

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

/** A fresh model every week; scores every day (training first when no model exists yet). Both replace whole rows or
 *  add a model row, so a tick run twice only repeats the work. */
export function churnJobs(log: (l: string) => void): Job[] {
  return [
    {
      name: 'churn.train', schedule: '40 4 * * 1',
      run: async (db, now) => {
        const m = await trainAndSave(db, { seed: DEFAULT_SEED, dataEnd: await dataEndOf(db, now) });
        return { model: m.id, auc: m.metrics.auc, baseline_auc: m.metrics.baseline.auc, scored: (await scoreSubscribers(db, { now }))?.scored };
      },
    },
    {
      name: 'churn.score', schedule: '20 5 * * *',
      run: async (db, now) => {
        let s = await scoreSubscribers(db, { now });
        if (!s) {
          log('churn.score: no churn model yet: training one first');
          await trainAndSave(db, { seed: DEFAULT_SEED });
          s = await scoreSubscribers(db, { now });
        }
        return s;
      },
    },
  ];
}

/** First start: when the database has a history and no churn model yet, train, score and evaluate the recommendations
 *  once — in the background (the caller does not wait), logging the outcome; a failure is logged, never thrown. */
export function firstStartModels(db: Db, log: (l: string) => void): Promise<void> {
  return (async () => {
    if (await db.one(`SELECT 1 FROM churn_models LIMIT 1`)) return;
    if (!(await db.one(`SELECT 1 FROM subscription_events LIMIT 1`))) return;
    log('ml: no churn model yet: training and scoring once in the background');
    await trainAll(db, DEFAULT_SEED, (l) => log(`ml: ${l}`));
    // and one evaluation, so the recommendation_quality report has figures from the first day
    const e = await evaluateRecommendations(db, { seed: DEFAULT_SEED });
    log(`ml: recommendations evaluated: hit-rate@10 ${e.hit_rate_at_10} (most popular ${e.baselines.most_popular.hit_rate_at_10})`);
  })().catch((e) => log(`ml: first-start training stopped: ${e.message}`));
}
