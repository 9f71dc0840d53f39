// The margin the recommender must hold over its baselines on a simulated history, whatever the seed
// (test/recommend.test.ts, test/recommend-seeds.test.ts). Measured on the small preset: hit-rate@10 and NDCG@10
// 2.2–2.5 × most-popular's (README "Recommendations and churn prediction (server/ml)").
import * as assert from 'uvu/assert';
import type { Evaluation } from '../../server/ml/recommend.ts';

export function assertMargins(seed: number, e: Evaluation) {
  const mp = e.baselines.most_popular, rnd = e.baselines.random;
  const line = `seed ${seed}: hit-rate@10 ${e.hit_rate_at_10} vs most-popular ${mp.hit_rate_at_10} vs random ${rnd.hit_rate_at_10}; `
    + `NDCG@10 ${e.ndcg_at_10} vs ${mp.ndcg_at_10} vs ${rnd.ndcg_at_10}; coverage ${e.coverage} vs ${mp.coverage} vs ${rnd.coverage}`;
  console.log(line);
  assert.ok(e.hit_rate_at_10 >= 1.5 * mp.hit_rate_at_10, line);
  assert.ok(e.ndcg_at_10 >= 1.5 * mp.ndcg_at_10, line);
  assert.ok(mp.hit_rate_at_10 > 3 * rnd.hit_rate_at_10, line);
  assert.ok(e.coverage > 50 * mp.coverage, line);
}
