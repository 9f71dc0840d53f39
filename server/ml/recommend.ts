// Placeholder, replaced at merge by the recommendations branch's server/ml/recommend.ts (same signatures).
import type { Db } from '../db/index.ts';

export interface RankEval { hit_rate_at_10: number; ndcg_at_10: number; coverage: number }

export async function refreshRecommendations(_db: Db, _opts: { seed: number; now?: Date }): Promise<{ titles: number; users: number; ms: number }> {
  throw new Error('recommendations: not merged');
}

export async function evaluateRecommendations(_db: Db, _opts: { seed: number }): Promise<RankEval & { baselines: { most_popular: RankEval; random: RankEval } }> {
  throw new Error('recommendations: not merged');
}
