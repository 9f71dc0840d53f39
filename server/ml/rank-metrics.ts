// Ranking metrics of the recommendation evaluation (README "Recommendations and churn prediction (server/ml)"):
// binary relevance — a recommended title is relevant when it is one of the user's held-out titles.

export interface RankCase {
  /** What was recommended, best first (only the first k count). */
  ranked: readonly number[];
  /** The user's held-out titles. */
  relevant: ReadonlySet<number> | readonly number[];
}

const asSet = (r: RankCase['relevant']) => (r instanceof Set ? r : new Set(r as readonly number[]));

/** 1 when one of the first k recommendations is relevant, else 0. */
export function hitAtK(c: RankCase, k = 10): number {
  const rel = asSet(c.relevant);
  return c.ranked.slice(0, k).some((id) => rel.has(id)) ? 1 : 0;
}

/** DCG of the first k (relevant at position i, from 0, adds 1/log2(i + 2)) over the best possible DCG. */
export function ndcgAtK(c: RankCase, k = 10): number {
  const rel = asSet(c.relevant);
  if (!rel.size) return 0;
  let dcg = 0;
  c.ranked.slice(0, k).forEach((id, i) => { if (rel.has(id)) dcg += 1 / Math.log2(i + 2); });
  let ideal = 0;
  for (let i = 0; i < Math.min(k, rel.size); i++) ideal += 1 / Math.log2(i + 2);
  return dcg / ideal;
}

/** Share of the catalog that appears in at least one user's first k recommendations. */
export function coverageAtK(cases: readonly Pick<RankCase, 'ranked'>[], catalogSize: number, k = 10): number {
  if (catalogSize <= 0) return 0;
  const seen = new Set<number>();
  for (const c of cases) for (const id of c.ranked.slice(0, k)) seen.add(id);
  return seen.size / catalogSize;
}

export interface RankEval { hit_rate_at_10: number; ndcg_at_10: number; coverage: number }

/** Mean hit-rate@10 and NDCG@10 over the users, and the catalog coverage of their top 10s (0s when no user). */
export function rankEval(cases: readonly RankCase[], catalogSize: number): RankEval {
  const n = cases.length;
  const mean = (f: (c: RankCase) => number) => (n ? cases.reduce((s, c) => s + f(c), 0) / n : 0);
  return { hit_rate_at_10: mean((c) => hitAtK(c, 10)), ndcg_at_10: mean((c) => ndcgAtK(c, 10)), coverage: coverageAtK(cases, catalogSize, 10) };
}
