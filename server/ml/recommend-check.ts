// Does the viewing carry the signal the recommender learns? (README "Recommendations and churn prediction
// (server/ml)"): the simulator gives each customer favourite genres; if viewing follows them, the genres a customer
// watched most in the first half of their history take a much larger share of their later viewing than those genres'
// share of the catalog. Measured in SQL on whatever watch_events hold (simulated or live).
import sql from 'sql-template-tag';
import type { Db } from '../db/index.ts';
import { readConsistently } from './recommend.ts';

export interface GenreAffinity {
  /** Customers measured: those with at least 10 viewings (the half-split needs some), SAMPLE of them at most. */
  users: number;
  /** Share of their second-half viewings (of titles with a genre) whose title is in one of their 3 first-half top genres. */
  watchShare: number;
  /** Share of the catalog's titles in those genres (averaged the same way: per viewing). */
  catalogShare: number;
  /** watchShare / catalogShare: 1 = viewing ignores the genres, the model would learn nothing from them. */
  lift: number;
}

/** Customers measured at most (a fixed pseudo-random sample by id): the catalog share is counted per customer. */
export const SAMPLE = 2000;

export async function genreAffinity(db: Db): Promise<GenreAffinity> {
  const r = await readConsistently(db, (q) => q.one<{ users: number; watch_share: number | null; catalog_share: number | null }>(sql`
    WITH sample AS (
      SELECT user_id FROM watch_events GROUP BY user_id HAVING count(*) >= 10
      ORDER BY hashint8(user_id), user_id LIMIT ${SAMPLE}),
    w AS (
      SELECT user_id, title_id, row_number() OVER (PARTITION BY user_id ORDER BY started_at, id) AS n,
             count(*) OVER (PARTITION BY user_id) AS total
      FROM watch_events WHERE user_id IN (SELECT user_id FROM sample)),
    early AS (
      SELECT w.user_id, tg.genre_id, count(*) AS c FROM w JOIN title_genres tg USING (title_id)
      WHERE w.total >= 10 AND w.n <= w.total / 2 GROUP BY 1, 2),
    top AS (
      SELECT user_id, genre_id FROM (
        SELECT user_id, genre_id, row_number() OVER (PARTITION BY user_id ORDER BY c DESC, genre_id) AS r FROM early) x
      WHERE r <= 3),
    catalog_share AS (
      SELECT top.user_id, count(DISTINCT tg.title_id)::float8 / (SELECT count(*) FROM titles) AS share
      FROM top JOIN title_genres tg USING (genre_id) GROUP BY 1),
    late AS (
      SELECT w.user_id, w.n, bool_or(top.genre_id IS NOT NULL) AS hit
      FROM w JOIN title_genres tg USING (title_id) LEFT JOIN top ON top.user_id = w.user_id AND top.genre_id = tg.genre_id
      WHERE w.total >= 10 AND w.n > w.total / 2 GROUP BY 1, 2)
    SELECT count(DISTINCT late.user_id)::int AS users, avg(hit::int)::float8 AS watch_share, avg(c.share) AS catalog_share
    FROM late JOIN catalog_share c USING (user_id)`));
  const watchShare = r?.watch_share ?? 0, catalogShare = r?.catalog_share ?? 0;
  return { users: r?.users ?? 0, watchShare, catalogShare, lift: catalogShare ? watchShare / catalogShare : 0 };
}
