// The recommender's arithmetic on tiny hand-made cases whose answers are worked out by hand: hit-rate@10, NDCG@10
// and coverage (server/ml/rank-metrics.ts), cosine neighbours through the inverted index, the blend, and a user's
// ranking (server/ml/recommend-model.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hitAtK, ndcgAtK, coverageAtK, rankEval } from '../server/ml/rank-metrics.ts';
import { nearestNeighbours, blendNeighbours, rankForUser, TopK } from '../server/ml/recommend-model.ts';
import { evaluateSplit } from '../server/ml/recommend.ts';

const close = (a: number, b: number, msg?: string) => assert.ok(Math.abs(a - b) < 1e-9, `${msg ?? ''} ${a} ≠ ${b}`);

test('hit-rate@10 and NDCG@10 of a hand-made case', () => {
  // user A: relevant 3 (position 2) and 1 (position 4); user B: relevant 42, not in the top 10 (it is 11th)
  const a = { ranked: [5, 3, 9, 1, 7, 8, 10, 11, 12, 13, 14], relevant: [3, 1] };
  const b = { ranked: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42], relevant: [42] };
  assert.is(hitAtK(a), 1);
  assert.is(hitAtK(b), 0);
  // DCG = 1/log2(3) + 1/log2(5) = 0.6309297536 + 0.4306765581; ideal = 1 + 1/log2(3)
  close(ndcgAtK(a), (0.6309297535714575 + 0.43067655807339306) / 1.6309297535714575, 'A');
  close(ndcgAtK(a), 0.6509209298071326);
  assert.is(ndcgAtK(b), 0);
  // a single relevant title at the top: 1
  assert.is(ndcgAtK({ ranked: [42, 1], relevant: [42] }), 1);
  // more relevant titles than 10: the ideal counts 10 of them
  close(ndcgAtK({ ranked: [1], relevant: Array.from({ length: 12 }, (_, i) => i + 1) }),
    1 / Array.from({ length: 10 }, (_, i) => 1 / Math.log2(i + 2)).reduce((s, x) => s + x, 0));
  const e = rankEval([a, b], 100);
  close(e.hit_rate_at_10, 0.5);
  close(e.ndcg_at_10, 0.6509209298071326 / 2);
  // top 10s: A's {5,3,9,1,7,8,10,11,12,13} and B's {1..10}: together 1..13, 13 distinct titles of 100
  close(e.coverage, 0.13);
  close(coverageAtK([{ ranked: [1, 2] }, { ranked: [2, 3] }], 4), 0.75);
  assert.equal(rankEval([], 10), { hit_rate_at_10: 0, ndcg_at_10: 0, coverage: 0 });
});

test('cosine neighbours: only items sharing a feature are compared; scores are dot products; shrink counts overlap', () => {
  const s = Math.SQRT1_2;
  // item 0 = (f0, f1)/√2, item 1 = (f1, f2)/√2, item 2 = f2, item 3 = f9 (shares nothing)
  const items = {
    features: [Int32Array.of(0, 1), Int32Array.of(1, 2), Int32Array.of(2), Int32Array.of(9)],
    weights: [Float64Array.of(s, s), Float64Array.of(s, s), Float64Array.of(1), Float64Array.of(1)],
  };
  const nn = nearestNeighbours(items, 5);
  assert.equal(nn[0].map((x) => x.item), [1]);
  close(nn[0][0].score, 0.5);
  assert.equal(nn[1].map((x) => x.item), [2, 0]); // cos(1,2) = 1/√2 > cos(1,0) = 1/2
  close(nn[1][0].score, s);
  assert.equal(nn[3], []);
  // shrink 1: 0.5 × 1/(1+1) — one shared feature
  close(nearestNeighbours(items, 5, 1)[0][0].score, 0.25);
  // top 1 keeps the best only
  assert.equal(nearestNeighbours(items, 1)[1].map((x) => x.item), [2]);
});

test('TopK keeps the k best, ties to the smaller item, whatever the order offered', () => {
  const k = new TopK(3);
  for (const [i, sc] of [[9, 1], [4, 5], [7, 5], [2, 0.5], [1, 5], [3, 2]]) k.offer(i, sc);
  assert.equal(k.sorted(), [{ item: 1, score: 5 }, { item: 4, score: 5 }, { item: 7, score: 5 }]);
});

test('blend: each kind scaled by its mean best score; items without viewers keep their content neighbours', () => {
  const content = [[{ item: 1, score: 0.8 }, { item: 2, score: 0.4 }], [{ item: 0, score: 0.8 }], [{ item: 0, score: 0.4 }]];
  const cowatch = [[{ item: 2, score: 0.2 }], [], [{ item: 0, score: 0.2 }]];
  // mean best content = (0.8 + 0.8 + 0.4) / 3 = 2/3; mean best co-watch = 0.2
  const b = blendNeighbours(content, cowatch, 0.25, 10);
  // item 0: to 1 = 0.25 × 0.8 / (2/3) = 0.3; to 2 = 0.25 × 0.4 / (2/3) + 0.75 × 0.2 / 0.2 = 0.15 + 0.75 = 0.9
  assert.equal(b[0].map((x) => x.item), [2, 1]);
  close(b[0][0].score, 0.9);
  close(b[0][1].score, 0.3);
  assert.is(b[0][0].cowatch, 0.2);
  assert.equal(b[1].map((x) => x.item), [0]);
  close(b[1][0].score, 0.3);
});

test('a user\'s ranking sums weight × similarity over the history, never offers an excluded title, names the main reason', () => {
  const sim: Record<number, { item: number; score: number }[]> = {
    10: [{ item: 1, score: 0.5 }, { item: 2, score: 0.4 }, { item: 11, score: 0.9 }],
    11: [{ item: 2, score: 0.5 }, { item: 3, score: 0.1 }, { item: 10, score: 0.9 }],
  };
  const picks = rankForUser([{ title: 10, weight: 1 }, { title: 11, weight: 0.5 }], (id) => sim[id] ?? [], new Set([10, 11]), 10);
  // 2: 0.4 + 0.25 = 0.65 (mostly from 10); 1: 0.5; 3: 0.05
  assert.equal(picks.map((p) => p.title), [2, 1, 3]);
  close(picks[0].score, 0.65);
  assert.is(picks[0].because, 10);
  assert.is(picks[2].because, 11);
  // popularity breaks ties: 1 and 2 both score 0.5 from title 11 alone
  const tie = rankForUser([{ title: 11, weight: 1 }], () => [{ item: 1, score: 0.5 }, { item: 2, score: 0.5 }], new Set(), 2, (id) => (id === 2 ? 0 : 1));
  assert.equal(tie.map((p) => p.title), [2, 1]);
});

test('the evaluation on a hand-made split: held-out titles found by co-watch, baselines, same seed same figures', () => {
  // 40 titles; 30 users who all watched 1, 2 then 3; the evaluated user watched 1 and 2 and 4, 5 (held out: 3 is
  // watched by everyone else after 1 and 2), so co-watch must rank 3 first
  const ids = Array.from({ length: 40 }, (_, i) => i + 1);
  const titles = { ids, index: new Map(ids.map((id, i) => [id, i])) };
  const content = ids.map(() => []);
  const split = [
    ...Array.from({ length: 30 }, (_, u) => ({ eligible: false, train: [1, 2, 3, 10 + (u % 20)], test: [] as number[] })),
    { eligible: true, train: [1, 2, 4, 5], test: [3, 40] },
  ];
  const e = evaluateSplit(titles, content, split, 7);
  assert.is(e.hit_rate_at_10, 1);
  // 3 at position 1, 40 nowhere: DCG 1, ideal 1 + 1/log2(3)
  close(e.ndcg_at_10, +(1 / 1.6309297535714575).toFixed(4));
  // most popular unwatched: 3 (30 viewers) first, then 10..29 by viewers then id
  assert.is(e.baselines.most_popular.hit_rate_at_10, 1);
  close(e.baselines.most_popular.coverage, 10 / 40);
  assert.equal(evaluateSplit(titles, content, split, 7), e);
  // the random baseline follows the seed: over other seeds it sometimes finds a held-out title, sometimes not
  const random = [7, ...Array.from({ length: 8 }, (_, s) => 100 + s)].map((seed) => evaluateSplit(titles, content, split, seed).baselines.random.ndcg_at_10);
  assert.ok(new Set(random).size > 1, `random NDCG@10 by seed: ${random.join(', ')}`);
});

test.run();
