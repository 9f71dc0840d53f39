// Recommendations (README "Recommendations and churn prediction (server/ml)"): the refresh that fills
// rec_title_similar (content similarity blended with item-item co-watch) and rec_popular_segment (cold start), and
// the time-based evaluation beside the most-popular and random baselines, stored in rec_evaluations.
// Features come from SQL (TF-IDF weights, the description's full-text lexemes, viewers per title); the sparse
// nearest-neighbour search and the ranking are server/ml/recommend-model.ts.
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import { rngFor } from '../../etl/simulator/rng.ts';
import {
  nearestNeighbours, blendNeighbours, rankForUser, recencyWeight, HISTORY_DEPTH, type Neighbour, type Similar,
} from './recommend-model.ts';
import { rankEval, type RankCase, type RankEval } from './rank-metrics.ts';

export type { RankEval } from './rank-metrics.ts';

/** Model settings, stored with each refresh and evaluation. */
export const REC_PARAMS = {
  /** Neighbours kept per title in rec_title_similar. */
  neighbours: 30,
  /** Content features held by more titles than this share of the catalog are left out. */
  maxFeatureShare: 0.12,
  /** Neighbours of each kind considered before blending. */
  candidates: 60,
  /** Share of the blended score from content similarity (the rest from co-watch). */
  contentWeight: 0.2,
  /** Co-watch cosine × c / (c + shrink), c = co-viewers. */
  shrink: 5,
  /** Distinct titles held out per user in the evaluation (each user's last ones), and the least left to learn from. */
  heldOut: 2,
  minTrain: 3,
  /** Cold start: viewing of the last N days, segments of at least this many viewers. */
  popularDays: 90,
  minSegmentViewers: 20,
  popularDepth: 30,
} as const;

const EVAL_RANDOM_STREAM = 18;
/** Statement timeout of the batch reads and writes (the server's default, 30 s, is for requests). */
export const BATCH_TIMEOUT_MS = 600_000;

/** The model's inputs read in one snapshot (catalog and viewing agree), with the batch timeout. */
export function readConsistently<T>(db: Db, read: (q: Queryable) => Promise<T>): Promise<T> {
  return db.tx(read, { readOnly: true, isolation: 'repeatable read', statementTimeoutMs: BATCH_TIMEOUT_MS });
}

export interface Titles { ids: number[]; index: Map<number, number> }

export async function loadTitles(db: Queryable): Promise<Titles> {
  const ids = (await db.query<{ id: number }>(`SELECT id FROM titles ORDER BY id`)).map((r) => r.id);
  return { ids, index: new Map(ids.map((id, i) => [id, i])) };
}

/**
 * Each title's content vector, in SQL: one feature per genre, director, the first 8 billed cast members, country,
 * rating, type and description lexeme (PostgreSQL full-text, English stemming), weighted by kind × idf (ln N/df), then
 * L2-normalized, so the dot product of two titles is their cosine. Features held by one title only are left out,
 * and so are those held by more than maxFeatureShare of the catalog ("Movie", "TV-MA", "International Movies", the
 * United States): their idf is low, and comparing every pair of titles that shares one would cost most of the time.
 */
export async function contentVectors(db: Queryable, t: Titles) {
  const rows = await db.query<{ title_id: number; f: number[]; w: number[] }>(sql`
    WITH raw AS (
      SELECT title_id, tok, max(kind_w) AS w FROM (
        SELECT title_id, 'g' || genre_id AS tok, 1.0 AS kind_w FROM title_genres
        UNION ALL SELECT title_id, 'd' || person_id, 1.5 FROM title_directors
        UNION ALL SELECT title_id, 'c' || person_id, 1.0 FROM title_cast WHERE ord < 8
        UNION ALL SELECT title_id, 'n' || country_id, 0.5 FROM title_countries
        UNION ALL SELECT id, 'r' || rating, 0.4 FROM titles WHERE rating IS NOT NULL
        UNION ALL SELECT id, 't' || type, 0.4 FROM titles
        UNION ALL SELECT id, 'w' || lexeme, 0.6 FROM titles, unnest(to_tsvector('english', coalesce(description, ''))) AS l
          WHERE length(lexeme) > 2) x
      GROUP BY 1, 2),
    df AS (SELECT tok, count(*) AS df, row_number() OVER (ORDER BY tok) - 1 AS f FROM raw GROUP BY tok
           HAVING count(*) BETWEEN 2 AND greatest(2, ${REC_PARAMS.maxFeatureShare}::float8 * (SELECT count(*) FROM titles))),
    weighted AS (
      SELECT r.title_id, df.f, r.w * ln((SELECT count(*) FROM titles)::float8 / df.df) AS w FROM raw r JOIN df USING (tok)),
    normed AS (SELECT title_id, f, w / nullif(sqrt(sum(w * w) OVER (PARTITION BY title_id)), 0) AS w FROM weighted)
    SELECT title_id, array_agg(f::int ORDER BY f) AS f, array_agg(w ORDER BY f) AS w
    FROM normed WHERE w > 0 GROUP BY title_id`);
  const features: Int32Array[] = t.ids.map(() => new Int32Array(0));
  const weights: Float64Array[] = t.ids.map(() => new Float64Array(0));
  for (const r of rows) {
    const i = t.index.get(r.title_id);
    if (i === undefined) continue;
    features[i] = Int32Array.from(r.f);
    weights[i] = Float64Array.from(r.w);
  }
  return { features, weights };
}

/** Every user's distinct titles in the order first watched (started before `before` when given). */
export async function viewingLists(db: Queryable, before?: Date): Promise<{ user: number; titles: number[] }[]> {
  const rows = await db.query<{ user_id: number; titles: number[] }>(sql`
    SELECT user_id, array_agg(title_id::int ORDER BY first_at, title_id) AS titles
    FROM (SELECT user_id, title_id, min(started_at) AS first_at FROM watch_events
          WHERE ${before ?? null}::timestamptz IS NULL OR started_at < ${before ?? null}::timestamptz
          GROUP BY 1, 2) w
    GROUP BY user_id ORDER BY user_id`);
  return rows.map((r) => ({ user: r.user_id, titles: r.titles }));
}

/** Co-watch vectors: a title's viewers, each weighing 1/sqrt(viewers of the title), so dot products are cosines. */
function cowatchVectors(lists: readonly number[][], t: Titles) {
  const viewers: number[][] = t.ids.map(() => []);
  lists.forEach((titles, u) => { for (const id of titles) { const i = t.index.get(id); if (i !== undefined) viewers[i].push(u); } });
  return {
    features: viewers.map((v) => Int32Array.from(v)),
    weights: viewers.map((v) => new Float64Array(v.length).fill(v.length ? 1 / Math.sqrt(v.length) : 0)),
  };
}

/** The blended neighbours of every title (by catalog index) from the content vectors and these viewing lists. */
function buildSimilar(content: Neighbour[][], lists: readonly number[][], t: Titles): Similar[][] {
  const cowatch = nearestNeighbours(cowatchVectors(lists, t), REC_PARAMS.candidates, REC_PARAMS.shrink);
  return blendNeighbours(content, cowatch, REC_PARAMS.contentWeight, REC_PARAMS.neighbours);
}

/**
 * Recomputes rec_title_similar from the catalog and all viewing (started before `now`), and rec_popular_segment
 * from the last REC_PARAMS.popularDays days; both replaced in one transaction. Deterministic: the same data give the
 * same rows (`seed` is recorded; nothing here draws at random). `users` = customers whose viewing fed the co-watch.
 */
export async function refreshRecommendations(db: Db, opts: { seed: number; now?: Date }): Promise<{ titles: number; users: number; ms: number }> {
  const t0 = performance.now();
  const now = opts.now ?? new Date();
  const { t, vectors, lists } = await readConsistently(db, async (q) => {
    const t = await loadTitles(q);
    return { t, vectors: await contentVectors(q, t), lists: await viewingLists(q, now) };
  });
  const content = nearestNeighbours(vectors, REC_PARAMS.candidates);
  const similar = buildSimilar(content, lists.map((l) => l.titles), t);
  const cols = { title: [] as number[], rank: [] as number[], similar: [] as number[], score: [] as number[], content: [] as number[], cowatch: [] as number[] };
  similar.forEach((list, i) => list.forEach((s, r) => {
    cols.title.push(t.ids[i]); cols.rank.push(r + 1); cols.similar.push(t.ids[s.item]);
    cols.score.push(s.score); cols.content.push(s.content); cols.cowatch.push(s.cowatch);
  }));
  const titles = similar.filter((l) => l.length).length;
  await db.tx(async (q) => {
    await q.query(`DELETE FROM rec_title_similar`);
    await q.query(sql`
      INSERT INTO rec_title_similar (title_id, rank, similar_id, score, content_score, cowatch_score)
      SELECT * FROM unnest(${cols.title}::bigint[], ${cols.rank}::smallint[], ${cols.similar}::bigint[], ${cols.score}::real[],
                           ${cols.content}::real[], ${cols.cowatch}::real[])`);
    await refreshPopularSegments(q, now);
    const ms = Math.round(performance.now() - t0);
    await q.query(sql`INSERT INTO rec_refreshes (seed, titles, users, pairs, ms, params)
      VALUES (${opts.seed}, ${titles}, ${lists.length}, ${cols.title.length}, ${ms}, ${JSON.stringify(REC_PARAMS)})`);
  }, { statementTimeoutMs: BATCH_TIMEOUT_MS });
  return { titles, users: lists.length, ms: Math.round(performance.now() - t0) };
}

/**
 * Cold start: per (country, plan) of the customers holding a subscription in the period, the titles most of them
 * watched in the last days; also per plan over every country (country '') and over everyone (both ''). Segments
 * with fewer than minSegmentViewers viewers are left out (the page falls back to the wider one).
 */
async function refreshPopularSegments(q: Queryable, now: Date) {
  const from = new Date(now.getTime() - REC_PARAMS.popularDays * 86_400_000);
  await q.query(`DELETE FROM rec_popular_segment`);
  await q.query(sql`
    WITH plan_of AS (
      SELECT DISTINCT ON (s.user_id) s.user_id, p.code AS plan_code, coalesce(u.country, '') AS country
      FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN users u ON u.id = s.user_id
      WHERE s.created_at < ${now} AND (s.ended_at IS NULL OR s.ended_at > ${from})
      ORDER BY s.user_id, s.created_at DESC, s.id DESC),
    viewing AS (
      SELECT DISTINCT w.user_id, w.title_id FROM watch_events w WHERE w.started_at >= ${from} AND w.started_at < ${now}),
    counted AS (
      SELECT coalesce(country, '') AS country, coalesce(plan_code, '') AS plan_code, title_id, count(*) AS viewers,
             GROUPING(country, plan_code) AS level
      FROM viewing JOIN plan_of USING (user_id)
      GROUP BY GROUPING SETS ((country, plan_code, title_id), (plan_code, title_id), (title_id))),
    segments AS (
      SELECT coalesce(country, '') AS country, coalesce(plan_code, '') AS plan_code, count(DISTINCT user_id) AS segment_viewers
      FROM viewing JOIN plan_of USING (user_id)
      GROUP BY GROUPING SETS ((country, plan_code), (plan_code), ())),
    ranked AS (
      SELECT c.*, s.segment_viewers, row_number() OVER (PARTITION BY c.country, c.plan_code ORDER BY c.viewers DESC, c.title_id) AS rank
      FROM counted c JOIN segments s USING (country, plan_code)
      WHERE s.segment_viewers >= ${REC_PARAMS.minSegmentViewers} OR c.level = 3)
    INSERT INTO rec_popular_segment (country, plan_code, rank, title_id, viewers, segment_viewers)
    SELECT country, plan_code, rank, title_id, viewers, segment_viewers FROM ranked WHERE rank <= ${REC_PARAMS.popularDepth}`);
}

export type Evaluation = RankEval & { baselines: { most_popular: RankEval; random: RankEval } };

/**
 * Time-based evaluation: each user with at least heldOut + minTrain distinct titles has their last heldOut distinct
 * titles (by first viewing) held out; the model learns co-watch from every user's remaining viewing only, ranks 10
 * titles per user from their training history (never one they watched), and is scored by hit-rate@10, NDCG@10 and
 * catalog coverage — beside the 10 most-watched titles in training the user has not watched, and 10 random titles
 * they have not watched (seeded). The figures are stored in rec_evaluations / rec_evaluation_results.
 */
export async function evaluateRecommendations(db: Db, opts: { seed: number }): Promise<Evaluation> {
  const { t, vectors, lists } = await readConsistently(db, async (q) => {
    const t = await loadTitles(q);
    return { t, vectors: await contentVectors(q, t), lists: await viewingLists(q) };
  });
  const { heldOut, minTrain } = REC_PARAMS;
  const split = lists.map((l) => {
    const eligible = l.titles.length >= heldOut + minTrain;
    return { eligible, train: eligible ? l.titles.slice(0, -heldOut) : l.titles, test: eligible ? l.titles.slice(-heldOut) : [] };
  });
  const result = evaluateSplit(t, nearestNeighbours(vectors, REC_PARAMS.candidates), split, opts.seed);
  const users = split.filter((s) => s.eligible).length;
  await db.tx(async (q) => {
    const e = await q.one<{ id: number }>(sql`
      INSERT INTO rec_evaluations (seed, users, held_out, catalog, params)
      VALUES (${opts.seed}, ${users}, ${heldOut}, ${t.ids.length}, ${JSON.stringify(REC_PARAMS)}) RETURNING id`);
    const rows: [string, RankEval][] = [['recommender', result], ['most_popular', result.baselines.most_popular], ['random', result.baselines.random]];
    for (const [method, m] of rows) {
      await q.query(sql`INSERT INTO rec_evaluation_results (evaluation_id, method, hit_rate_at_10, ndcg_at_10, coverage)
        VALUES (${e!.id}, ${method}, ${m.hit_rate_at_10}, ${m.ndcg_at_10}, ${m.coverage})`);
    }
  });
  return result;
}

const round = (m: RankEval): RankEval => ({
  hit_rate_at_10: +m.hit_rate_at_10.toFixed(4), ndcg_at_10: +m.ndcg_at_10.toFixed(4), coverage: +m.coverage.toFixed(4),
});

function firstUnseen(ids: readonly number[], seen: ReadonlySet<number>, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; out.length < k && i < ids.length; i++) if (!seen.has(ids[i])) out.push(ids[i]);
  return out;
}

/** The evaluation proper, on a given split (users' training and held-out title ids); exported for tests. */
export function evaluateSplit(t: Titles, content: Neighbour[][], split: { eligible: boolean; train: number[]; test: number[] }[], seed: number): Evaluation {
  const similar = buildSimilar(content, split.map((s) => s.train), t);
  const popularity = new Map<number, number>();
  for (const s of split) for (const id of s.train) popularity.set(id, (popularity.get(id) ?? 0) + 1);
  const popular = [...popularity.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([id]) => id);
  const popRank = new Map(popular.map((id, r) => [id, r]));
  const neighbours = (id: number) => {
    const i = t.index.get(id);
    return i === undefined ? [] : similar[i].map((s) => ({ item: t.ids[s.item], score: s.score }));
  };
  const model: RankCase[] = [], mostPopular: RankCase[] = [], random: RankCase[] = [];
  split.forEach((s, u) => {
    if (!s.eligible) return;
    const seen = new Set(s.train);
    const history = s.train.slice(-HISTORY_DEPTH).reverse().map((title, i) => ({ title, weight: recencyWeight(i) }));
    const ranked = rankForUser(history, neighbours, seen, 10, (id) => popRank.get(id) ?? Infinity).map((p) => p.title);
    // a history whose neighbours are all watched already is topped up with the most popular
    ranked.push(...firstUnseen(popular, new Set([...seen, ...ranked]), 10 - ranked.length));
    model.push({ ranked, relevant: s.test });
    mostPopular.push({ ranked: firstUnseen(popular, seen, 10), relevant: s.test });
    const r = rngFor(seed, EVAL_RANDOM_STREAM, u);
    const pick = new Set<number>();
    while (pick.size < Math.min(10, t.ids.length - seen.size)) {
      const id = t.ids[Math.floor(r() * t.ids.length)];
      if (!seen.has(id)) pick.add(id);
    }
    random.push({ ranked: [...pick], relevant: s.test });
  });
  const n = t.ids.length;
  return { ...round(rankEval(model, n)), baselines: { most_popular: round(rankEval(mostPopular, n)), random: round(rankEval(random, n)) } };
}
