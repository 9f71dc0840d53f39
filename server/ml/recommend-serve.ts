// What the pages show from the precomputed recommendation tables (README "Recommendations and churn prediction
// (server/ml)"): "More like this" on a title's page, and a signed-in subscriber's "Because you watched …" and "Top
// picks for you" rows on /browse — or, without viewing history, what is popular among customers of the same country
// and plan. Ranked per request from the user's current history, so a title they started or finished a minute ago is
// never offered; every row carries the sentence that says why.
import sql from 'sql-template-tag';
import type { Queryable } from '../db/index.ts';
import { rankForUser, recencyWeight, HISTORY_DEPTH } from './recommend-model.ts';
import { REC_PARAMS } from './recommend.ts';

export interface RecRow {
  id: 'because' | 'top-picks' | 'popular-segment';
  /** The heading: "Because you watched Narcos", "Top picks for you", "Popular with Standard subscribers in US". */
  name: string;
  /** The sentence under it that says why these titles. */
  why: string;
  titleIds: number[];
}

export const ROW_SIZE = 18;
/** A "Because you watched" row needs at least this many titles the user has not watched. */
const MIN_BECAUSE = 6;

/** A title's precomputed neighbours, best first; empty before the first refresh (the page then uses its own). */
export async function similarTitleIds(db: Queryable, titleId: number, limit: number): Promise<number[]> {
  const rows = await db.query<{ similar_id: number }>(sql`
    SELECT similar_id FROM rec_title_similar WHERE title_id = ${titleId} ORDER BY rank LIMIT ${limit}`);
  return rows.map((r) => r.similar_id);
}

/**
 * The user's personal rows. With viewing history: "Because you watched X" (X = the most recent title with at least
 * MIN_BECAUSE unwatched neighbours) and "Top picks for you" (the neighbours of the last HISTORY_DEPTH distinct titles,
 * recent ones weighing more; the heading names the titles that brought the first picks), never a title the user
 * has watched at all. Without history: the most popular titles among customers of the same country and plan, else of
 * the same plan, else of everyone, titled accordingly.
 */
export async function personalRows(db: Queryable, userId: number): Promise<RecRow[]> {
  const rows = await db.query<{ title_id: number; i: number; title: string; similar_id: number | null; score: number | null }>(sql`
    WITH h AS (SELECT title_id, max(started_at) AS last_at FROM watch_events WHERE user_id = ${userId} GROUP BY title_id),
    recent AS (
      SELECT title_id, (row_number() OVER (ORDER BY last_at DESC, title_id DESC) - 1)::int AS i
      FROM h ORDER BY last_at DESC, title_id DESC LIMIT ${HISTORY_DEPTH})
    SELECT r.title_id, r.i, t.title, s.similar_id, s.score
    FROM recent r JOIN titles t ON t.id = r.title_id
    LEFT JOIN rec_title_similar s ON s.title_id = r.title_id AND NOT EXISTS (SELECT 1 FROM h WHERE h.title_id = s.similar_id)
    ORDER BY r.i, s.rank`);
  if (!rows.length) return coldStart(db, userId);
  const names = new Map<number, string>();
  const neighbours = new Map<number, { item: number; score: number }[]>();
  for (const r of rows) {
    names.set(r.title_id, r.title);
    const list = neighbours.get(r.title_id) ?? [];
    if (r.similar_id !== null) list.push({ item: r.similar_id, score: r.score! });
    neighbours.set(r.title_id, list);
  }
  const history = [...names.keys()].map((title, i) => ({ title, weight: recencyWeight(i) }));
  const out: RecRow[] = [];
  const anchor = history.find((h) => neighbours.get(h.title)!.length >= MIN_BECAUSE);
  const because = anchor ? neighbours.get(anchor.title)!.slice(0, ROW_SIZE).map((n) => n.item) : [];
  if (anchor) {
    out.push({ id: 'because', name: `Because you watched ${names.get(anchor.title)}`, why: 'Titles like it that you have not watched yet.', titleIds: because });
  }
  const shown = new Set(because);
  const picks = rankForUser(history, (id) => neighbours.get(id) ?? [], shown, ROW_SIZE);
  if (picks.length >= MIN_BECAUSE) {
    const sources = [...new Set(picks.slice(0, 6).map((p) => p.because))].slice(0, 3).map((id) => names.get(id)!);
    out.push({ id: 'top-picks', name: 'Top picks for you', why: `Because you watched ${listWords(sources)}${history.length > sources.length ? ' and more' : ''}.`, titleIds: picks.map((p) => p.title) });
  }
  return out;
}

const listWords = (xs: string[]) => (xs.length <= 1 ? xs.join('') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`);

async function coldStart(db: Queryable, userId: number): Promise<RecRow[]> {
  const rows = await db.query<{ country: string; plan_code: string; plan_name: string; title_id: number }>(sql`
    WITH me AS (
      SELECT coalesce(u.country, '') AS country, p.code AS plan_code
      FROM users u LEFT JOIN LATERAL (
        SELECT plan_id FROM subscriptions s WHERE s.user_id = u.id ORDER BY (s.status = 'canceled'), s.created_at DESC, s.id DESC LIMIT 1) s ON true
      LEFT JOIN plans p ON p.id = s.plan_id
      WHERE u.id = ${userId}),
    seg AS (
      SELECT r.country, r.plan_code FROM rec_popular_segment r, me
      WHERE r.rank = 1 AND ((r.country = me.country AND r.plan_code = me.plan_code) OR (r.country = '' AND r.plan_code IN (me.plan_code, '')))
      ORDER BY (r.country = '') , (r.plan_code = '') LIMIT 1)
    SELECT r.country, r.plan_code, coalesce(p.name, '') AS plan_name, r.title_id
    FROM rec_popular_segment r JOIN seg USING (country, plan_code) LEFT JOIN plans p ON p.code = r.plan_code
    ORDER BY r.rank LIMIT ${ROW_SIZE}`);
  if (!rows.length) return [];
  const { country, plan_name } = rows[0];
  const who = plan_name ? `${plan_name} subscribers${country ? ` in ${country}` : ''}` : 'subscribers';
  return [{
    id: 'popular-segment', name: `Popular with ${who}`,
    why: `You have not watched anything yet: these are what ${who} watched most in the last ${REC_PARAMS.popularDays} days.`,
    titleIds: rows.map((r) => r.title_id),
  }];
}
