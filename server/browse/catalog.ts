// The catalog as subscribers see it: the shelves of /browse, search, filters, a title's page, "More like this" and
// "Continue watching". Everything a page shares with every other visitor (the shelves, the filter choices, the
// popularity ranking) is computed once a minute per process and kept in memory (BrowseCache), and so is each
// signed-in user's Continue watching until their viewing changes: /browse without a query usually costs no SQL.
import sql, { raw } from 'sql-template-tag';
import type { ChangeCache, Db, Queryable } from '../db/index.ts';
import { similarTitleIds } from '../ml/recommend-serve.ts';

export interface TitleCard {
  id: number;
  title: string;
  type: 'Movie' | 'TV Show';
  release_year: number | null;
  rating: string | null;
  duration_minutes: number | null;
  seasons: number | null;
}

export interface Shelf { id: string; name: string; titles: TitleCard[]; link?: string }

export interface BrowseSnapshot {
  at: number;
  /** Distinct per snapshot this process computed: what kept answers are compared with (two snapshots can share `at`,
   *  e.g. a catalog change within the same millisecond, or a clock that does not move). */
  serial: number;
  /** The catalog generation (catalog_state) it was computed for: a titles load makes the next request compute anew. */
  generation: number;
  /** Title ids by plays in the last 30 days, most played first (at most POPULAR_DEPTH). */
  popularIds: number[];
  shelves: Shelf[];
  genres: Map<string, number>;
  countries: Map<string, number>;
  ratings: string[];
  years: [number, number];
}

export interface Entitlement { allowed: boolean; status: string | null; reason: string }
/** What a title page shows a signed-in user: their access, where each title's latest unfinished viewing stopped, and
 *  the titles they finished (left out of More like this). Read by viewerOf (server/browse/play.ts). */
export interface Viewer { access: Entitlement; resume: Map<number, number>; finished: Set<number> }

export interface BrowseCache {
  snapshot?: BrowseSnapshot;
  pending?: Promise<BrowseSnapshot>;
  pendingFor?: number;
  /** Answers that are the same for everyone (result pages, title details, More like this, poster inputs), each kept
   *  with the snapshot it was computed under and served only with that snapshot: as fresh as the shelves. */
  answers: Map<string, { serial: number; value: unknown }>;
  /** Each signed-in user's rendered "Continue watching" shelf, by user id: kept while the change feed says none of the
   *  user's watch_events changed (sql/schema/0018_watch_events_notify.sql) and only under the snapshot it was rendered
   *  with (the cards are as fresh as the shelves). */
  continued: ChangeCache<{ serial: number; html: string }>;
  /** Each signed-in user's access and viewing positions for the title pages (server/browse/play.ts, viewerOf). */
  viewers: ChangeCache<Viewer>;
}
export const createBrowseCache = (): BrowseCache => ({ answers: new Map(), continued: new Map(), viewers: new Map() });
/** The change-feed names of a user's viewing history: theirs, and the whole table's (bulk loads, purges). */
export const watchEventsChanges = (userId: number) => ['watch_events', `watch_events:${userId}`];
/** Entries in BrowseCache.answers (least recently used go first). */
export const ANSWERS_MAX = 1000;

/** `compute()` unless the cache holds `key` under this snapshot; what it returns is kept (undefined too). */
export async function memo<T>(cache: BrowseCache, snap: BrowseSnapshot, key: string, compute: () => Promise<T>): Promise<T> {
  const hit = cache.answers.get(key);
  if (hit && hit.serial === snap.serial) {
    cache.answers.delete(key); // re-insert: most recently used last
    cache.answers.set(key, hit);
    return hit.value as T;
  }
  const value = await compute();
  cache.answers.delete(key);
  cache.answers.set(key, { serial: snap.serial, value });
  if (cache.answers.size > ANSWERS_MAX) cache.answers.delete(cache.answers.keys().next().value!);
  return value;
}

/** Snapshots are this old at most when served; an older one is served once more while a fresh one is computed. */
export const SNAPSHOT_TTL_MS = 60_000;
export const POPULAR_DAYS = 30;
const POPULAR_DEPTH = 1000;
const SHELF_SIZE = 18;
const GENRE_SHELVES = 8;
export const PAGE_SIZE = 24;

const CARD_COLUMNS = sql`t.id, t.title, t.type, t.release_year, t.rating, t.duration_minutes, t.seasons`;

/**
 * The shared snapshot: fresh within the TTL, else the stale one while one refresh runs, else wait for the first. One
 * computed for another catalog generation than `generation` (the catalog changed: titles, genres, countries) is not
 * served: the request waits for one of this generation.
 */
export async function browseSnapshot(db: Db, cache: BrowseCache, now: Date, generation = 0): Promise<BrowseSnapshot> {
  let s = cache.snapshot;
  if (s && generation && s.generation !== generation) s = undefined;
  const stale = !s || now.getTime() - s.at > SNAPSHOT_TTL_MS || now.getTime() < s.at;
  if (stale && (!cache.pending || (!s && cache.pendingFor !== generation))) {
    const pending = computeSnapshot(db, now, generation)
      .then((fresh) => { if (cache.pending === pending) cache.snapshot = fresh; return fresh; })
      .finally(() => { if (cache.pending === pending) cache.pending = undefined; });
    cache.pending = pending;
    cache.pendingFor = generation;
    // a background refresh that fails keeps the previous snapshot; the next request tries again
    if (s) pending.catch(() => {});
  }
  return s ?? cache.pending!;
}

let snapshots = 0;

async function computeSnapshot(db: Db, now: Date, generation: number): Promise<BrowseSnapshot> {
  return db.tx(async (q) => {
    const since = new Date(now.getTime() - POPULAR_DAYS * 86_400_000);
    const popular = await q.query<{ title_id: number }>(sql`
      SELECT title_id FROM watch_events WHERE started_at >= ${since} AND started_at <= ${now}
      GROUP BY title_id ORDER BY count(*) DESC, title_id LIMIT ${POPULAR_DEPTH}`);
    const popularIds = popular.map((r) => r.title_id);
    const shelves: Shelf[] = [];
    const byId = popularIds.length ? await cardsById(q, popularIds.slice(0, SHELF_SIZE)) : new Map<number, TitleCard>();
    shelves.push({ id: 'popular', name: 'Popular now', titles: popularIds.slice(0, SHELF_SIZE).map((id) => byId.get(id)!).filter(Boolean) });
    shelves.push({ id: 'new', name: 'New on Marquee', titles: await q.query<TitleCard>(sql`
      SELECT ${CARD_COLUMNS} FROM titles t WHERE t.date_added IS NOT NULL ORDER BY t.date_added DESC, t.id DESC LIMIT ${SHELF_SIZE}`) });
    // The biggest genres, each with its most played titles first (then the newest).
    const genreRows = await q.query<TitleCard & { genre: string }>(sql`
      WITH top AS (
        SELECT g.id, g.name, count(*) AS n FROM genres g JOIN title_genres tg ON tg.genre_id = g.id
        GROUP BY g.id ORDER BY n DESC, g.name LIMIT ${GENRE_SHELVES}),
      pop AS (SELECT id, rank FROM unnest(${popularIds}::bigint[]) WITH ORDINALITY AS p(id, rank)),
      ranked AS (
        SELECT top.name AS genre, top.n, tg.title_id,
               row_number() OVER (PARTITION BY top.id ORDER BY pop.rank NULLS LAST, t.date_added DESC NULLS LAST, t.id DESC) AS r
        FROM top JOIN title_genres tg ON tg.genre_id = top.id JOIN titles t ON t.id = tg.title_id
        LEFT JOIN pop ON pop.id = tg.title_id)
      SELECT ranked.genre, ${CARD_COLUMNS} FROM ranked JOIN titles t ON t.id = ranked.title_id
      WHERE ranked.r <= ${SHELF_SIZE} ORDER BY ranked.n DESC, ranked.genre, ranked.r`);
    for (const row of genreRows) {
      const { genre, ...card } = row;
      let shelf = shelves.find((x) => x.id === `genre:${genre}`);
      if (!shelf) shelves.push(shelf = { id: `genre:${genre}`, name: genre, titles: [], link: `/browse?${new URLSearchParams({ genre }).toString()}` });
      shelf.titles.push(card);
    }
    const genres = new Map((await q.query<{ name: string; id: number }>(`SELECT name, id FROM genres ORDER BY name`)).map((r) => [r.name, r.id]));
    const countries = new Map((await q.query<{ name: string; id: number }>(
      `SELECT c.name, c.id FROM countries c WHERE EXISTS (SELECT 1 FROM title_countries tc WHERE tc.country_id = c.id) ORDER BY c.name`))
      .map((r) => [r.name, r.id]));
    const ratings = (await q.query<{ rating: string }>(`SELECT DISTINCT rating FROM titles WHERE rating IS NOT NULL ORDER BY rating`)).map((r) => r.rating);
    const y = await q.one<{ lo: number | null; hi: number | null }>(`SELECT min(release_year) AS lo, max(release_year) AS hi FROM titles`);
    return { at: now.getTime(), serial: ++snapshots, generation, popularIds, shelves, genres, countries, ratings, years: [y?.lo ?? 1900, y?.hi ?? 2100] };
  }, { readOnly: true });
}

export async function cardsById(q: Queryable, ids: number[]): Promise<Map<number, TitleCard>> {
  const rows = await q.query<TitleCard>(sql`SELECT ${CARD_COLUMNS} FROM titles t WHERE t.id = ANY(${ids}::bigint[])`);
  return new Map(rows.map((r) => [r.id, r]));
}

export interface BrowseFilters {
  q?: string;
  type?: 'Movie' | 'TV Show';
  genreId?: number;
  countryId?: number;
  rating?: string;
  year?: number;
}

export interface ResultPage { titles: (TitleCard & { score?: number })[]; total: number }

export interface TitleDetail extends TitleCard {
  show_id: string;
  date_added: string | null;
  description: string | null;
  genres: string[];
  countries: string[];
  cast: string[];
  directors: string[];
}

export async function titleDetail(db: Queryable, id: number): Promise<TitleDetail | undefined> {
  return db.one<TitleDetail>(sql`
    SELECT ${CARD_COLUMNS}, t.show_id, t.date_added, t.description,
      ARRAY(SELECT g.name FROM title_genres tg JOIN genres g ON g.id = tg.genre_id WHERE tg.title_id = t.id ORDER BY g.name) AS genres,
      ARRAY(SELECT c.name FROM title_countries tc JOIN countries c ON c.id = tc.country_id WHERE tc.title_id = t.id ORDER BY c.name) AS countries,
      ARRAY(SELECT p.name FROM title_cast x JOIN people p ON p.id = x.person_id WHERE x.title_id = t.id ORDER BY x.ord) AS cast,
      ARRAY(SELECT p.name FROM title_directors x JOIN people p ON p.id = x.person_id WHERE x.title_id = t.id ORDER BY x.ord) AS directors
    FROM titles t WHERE t.id = ${id}`);
}

/**
 * "More like this": the title's precomputed neighbours (rec_title_similar, server/ml/recommend.ts) once the
 * recommendations have been refreshed; before that, titles sharing the most with this one, scored in one set-based
 * pass — a shared director 4, a shared cast member 2, a shared genre 3 divided by log2 of the genre's size (a niche
 * genre says more than "International Movies"), a shared country 1, the same rating 1, the same type 0.5; ties go to
 * the most played.
 */
export async function moreLikeThis(db: Queryable, id: number, popularIds: number[], limit = 12): Promise<TitleCard[]> {
  const ids = await similarTitleIds(db, id, limit);
  if (ids.length) {
    const byId = await cardsById(db, ids);
    return ids.map((x) => byId.get(x)).filter((t): t is TitleCard => !!t);
  }
  return db.query<TitleCard>(sql`
    WITH me AS (SELECT id, rating, type FROM titles WHERE id = ${id}),
    genre_size AS (SELECT genre_id, count(*) AS n FROM title_genres WHERE genre_id IN (SELECT genre_id FROM title_genres WHERE title_id = ${id}) GROUP BY genre_id),
    shared AS (
      SELECT o.title_id, 3.0 / log(2, greatest(gs.n, 2)) AS w FROM title_genres mine
        JOIN genre_size gs ON gs.genre_id = mine.genre_id JOIN title_genres o ON o.genre_id = mine.genre_id
        WHERE mine.title_id = ${id}
      UNION ALL SELECT o.title_id, 2.0 FROM title_cast mine JOIN title_cast o ON o.person_id = mine.person_id WHERE mine.title_id = ${id}
      UNION ALL SELECT o.title_id, 4.0 FROM title_directors mine JOIN title_directors o ON o.person_id = mine.person_id WHERE mine.title_id = ${id}
      UNION ALL SELECT o.title_id, 1.0 FROM title_countries mine JOIN title_countries o ON o.country_id = mine.country_id WHERE mine.title_id = ${id}),
    scored AS (SELECT title_id, sum(w) AS w FROM shared WHERE title_id <> ${id} GROUP BY title_id),
    pop AS (SELECT id, rank FROM unnest(${popularIds}::bigint[]) WITH ORDINALITY AS p(id, rank))
    SELECT ${CARD_COLUMNS}
    FROM scored s JOIN titles t ON t.id = s.title_id CROSS JOIN me LEFT JOIN pop ON pop.id = t.id
    ORDER BY s.w + CASE WHEN t.rating = me.rating THEN 1 ELSE 0 END + CASE WHEN t.type = me.type THEN 0.5 ELSE 0 END DESC,
             pop.rank NULLS LAST, t.id
    LIMIT ${limit}`);
}

export interface ContinueCard extends TitleCard { seconds_watched: number; duration_seconds: number }

/** The user's titles whose latest viewing started but did not complete, most recent first. */
export async function continueWatching(db: Queryable, userId: number, limit = SHELF_SIZE): Promise<ContinueCard[]> {
  return db.query<ContinueCard>(sql`
    SELECT ${CARD_COLUMNS}, w.seconds_watched, ${durationSql('t')} AS duration_seconds
    FROM (SELECT DISTINCT ON (title_id) title_id, started_at, seconds_watched, completed
          FROM watch_events WHERE user_id = ${userId} ORDER BY title_id, started_at DESC, id DESC) w
    JOIN titles t ON t.id = w.title_id
    WHERE NOT w.completed AND w.seconds_watched > 0
    ORDER BY w.started_at DESC, t.id
    LIMIT ${limit}`);
}

/** Minutes a show's episode is taken to last: the dataset gives seasons, not episodes or their length. */
export const EPISODE_MINUTES = 45;
/** A movie without a duration in the data is taken to last this long. */
export const DEFAULT_MOVIE_MINUTES = 90;

/** What one viewing of a title lasts, in seconds: a movie's running time, or one ~45-minute episode of a show. */
export function durationSeconds(t: { type: string; duration_minutes: number | null }): number {
  return (t.type === 'TV Show' ? EPISODE_MINUTES : t.duration_minutes ?? DEFAULT_MOVIE_MINUTES) * 60;
}
export const durationSql = (alias: string) =>
  sql`(CASE WHEN ${raw(alias)}.type = 'TV Show' THEN ${EPISODE_MINUTES} ELSE coalesce(${raw(alias)}.duration_minutes, ${DEFAULT_MOVIE_MINUTES}) END * 60)`;
