// The catalog's search index, in the server process (README "Catalog, play and visits"): every title's card, filter
// values and folded title, and every person's folded name with their titles, held in memory once per catalog
// generation (catalog_state, sql/schema/0020_catalog_generation.sql) and rebuilt when a write to the catalog moves it.
// A search scores its candidates exactly as pg_trgm's `similarity` and `word_similarity` would (the same trigrams, the
// same float4 arithmetic, the same thresholds), found through posting lists of trigrams, so a query costs a fraction of
// a millisecond of CPU instead of 11-15 ms of SQL, and filters and pages need no SQL at all.
import sql from 'sql-template-tag';
import { readThrough, type ChangeCache, type Db, type Queryable } from '../db/index.ts';
import { PAGE_SIZE, type BrowseFilters, type ResultPage, type TitleCard } from './catalog.ts';

/** pg_trgm's defaults (float4 GUCs): `a % b` is similarity ≥ 0.3, `a <% b` word_similarity ≥ 0.6. */
export const SIMILARITY_THRESHOLD = Math.fround(0.3);
export const WORD_SIMILARITY_THRESHOLD = Math.fround(0.6);
/** People whose names match best bring their titles (as cast, score × 0.9; as director, × 0.92). */
export const PEOPLE_MATCHED = 40;
const CAST_WEIGHT = 0.9;
/** Characters whose folding a process keeps (the catalog uses about 200). */
const FOLDING_MAX = 20_000;
const DIRECTOR_WEIGHT = 0.92;

/**
 * browse_fold() (lower case, unaccent) and pg_trgm's word characters, one code point at a time, as the database says
 * (its unaccent rules and its locale's lower() and isalnum()): asked once for every character of the catalog, and
 * for a query's characters not seen before (at most a few round trips in a process's life).
 */
export class Folding {
  private fold = new Map<number, string>();
  private word = new Map<number, boolean>();
  private pending = new Map<number, Promise<void>>();
  constructor(private db: Queryable) {}

  /** Learns the characters of `texts` not known yet (and those of their folds). */
  async learn(texts: Iterable<string>): Promise<void> {
    const missing = new Set<number>();
    const waits = new Set<Promise<void>>();
    // bounded: queries cycling through every character of Unicode forget what was learnt (and learn it again)
    if (this.fold.size > FOLDING_MAX) { this.fold.clear(); this.word.clear(); }
    for (const s of texts) {
      for (const ch of s) {
        const c = ch.codePointAt(0)!;
        // NUL and lone surrogates are no text to PostgreSQL: kept as they are, not word characters
        if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) { this.fold.set(c, ch); this.word.set(c, false); continue; }
        if (this.fold.has(c)) continue;
        const p = this.pending.get(c);
        if (p) waits.add(p); else missing.add(c);
      }
    }
    if (missing.size) {
      const codes = [...missing];
      const asked = this.db.query<{ c: number; f: string; w: boolean }>(sql`
        SELECT c, browse_fold(chr(c)) AS f, show_trgm(chr(c)) <> '{}' AS w FROM unnest(${codes}::int[]) AS c`)
        .then(async (rows) => {
          for (const r of rows) { this.fold.set(r.c, r.f); this.word.set(r.c, r.w); }
          await this.learn(rows.map((r) => r.f)); // a fold may bring a character of its own
        })
        .finally(() => { for (const c of codes) this.pending.delete(c); });
      for (const c of codes) this.pending.set(c, asked);
      waits.add(asked);
    }
    await Promise.all(waits);
  }

  /** browse_fold(s), for a string whose characters were learnt. */
  apply(s: string): string {
    let out = '';
    for (const ch of s) out += this.fold.get(ch.codePointAt(0)!) ?? ch;
    return out;
  }

  isWord(ch: string): boolean {
    const w = this.word.get(ch.codePointAt(0)!);
    return w ?? /[\p{L}\p{N}]/u.test(ch);
  }

  /** pg_trgm's trigrams of `s`, in order, duplicates kept (generate_trgm_only): each word padded "  word ". */
  trigrams(s: string): string[] {
    const out: string[] = [];
    if (/^[\x20-\x7e]*$/.test(s)) {
      // printable ASCII (nearly every title and name): words are the runs of what the database calls word characters
      let w = '';
      for (let i = 0; i <= s.length; i++) {
        const ch = s[i];
        if (ch !== undefined && this.isWord(ch)) { w += ch; continue; }
        if (w) {
          const p = `  ${w} `;
          for (let j = 0; j + 3 <= p.length; j++) out.push(p.slice(j, j + 3));
          w = '';
        }
      }
      return out;
    }
    let word: string[] = [];
    const flush = () => {
      if (!word.length) return;
      const padded = [' ', ' ', ...word, ' '];
      for (let i = 0; i + 3 <= padded.length; i++) out.push(padded[i] + padded[i + 1] + padded[i + 2]);
      word = [];
    };
    for (const ch of s) {
      if (this.isWord(ch)) word.push(ch); else flush();
    }
    flush();
    return out;
  }
}

/** CALCSML: count / |union| in float4, as pg_trgm computes it. */
const sml = (count: number, len1: number, len2: number) => Math.fround(count / (len1 + len2 - count));

/** One searchable field (titles' folded titles, or people's folded names): trigrams as numbers, posting lists. */
interface Field {
  texts: string[];
  /** each document's trigram ids in order (duplicates kept): seq.subarray(start[d], start[d + 1]) */
  seq: Int32Array;
  start: Int32Array;
  /** distinct trigrams per document */
  distinct: Uint16Array;
  /** documents holding each trigram id (each document once) */
  postings: Int32Array[];
}

interface TitleRow extends TitleCard { title_folded: string; date_added: string | null }

export interface SearchIndex {
  generation: number;
  builtMs: number;
  titles: TitleCard[];
  private: {
    folding: Folding;
    trigramIds: Map<string, number>;
    titleField: Field;
    peopleField: Field;
    personIds: Float64Array;
    castOf: Int32Array[];
    directedBy: Int32Array[];
    /** day number of date_added (NaN when unknown), for the order of results */
    added: Float64Array;
    genres: Int32Array[];
    countries: Int32Array[];
    byId: Map<number, number>;
    /** scratch space of one search at a time (searches are synchronous) */
    counts: Uint16Array;
    mark: Int32Array;
    lastPos: Int32Array;
    stamp: number;
    /** every title in the order of a list without a query, for the popularity ranking it was sorted by */
    listed?: { popularIds: number[]; order: Int32Array };
  };
}

function buildField(texts: string[], folding: Folding, trigramIds: Map<string, number>): { field: Field; grow: number[][] } {
  const seqs: number[][] = texts.map((t) => folding.trigrams(t).map((g) => {
    let id = trigramIds.get(g);
    if (id === undefined) trigramIds.set(g, (id = trigramIds.size));
    return id;
  }));
  const start = new Int32Array(texts.length + 1);
  for (let d = 0; d < texts.length; d++) start[d + 1] = start[d] + seqs[d].length;
  const seq = new Int32Array(start[texts.length]);
  const distinct = new Uint16Array(texts.length);
  const grow: number[][] = [];
  for (let d = 0; d < texts.length; d++) {
    seq.set(seqs[d], start[d]);
    const uniq = new Set(seqs[d]);
    distinct[d] = Math.min(uniq.size, 65535);
    for (const g of uniq) (grow[g] ??= []).push(d);
  }
  return { field: { texts, seq, start, distinct, postings: [] }, grow };
}

/** Reads the catalog (from the primary, in one snapshot with its generation) and builds the index. */
export async function buildSearchIndex(db: Db, folding: Folding): Promise<SearchIndex> {
  const t0 = performance.now();
  const read = await db.tx(async (q) => {
    const gen = (await q.one<{ generation: number }>(`SELECT generation FROM catalog_state`))!;
    const titles = await q.query<TitleRow>(`
      SELECT t.id, t.title, t.type, t.release_year, t.rating, t.duration_minutes, t.seasons, t.title_folded,
             to_char(t.date_added, 'YYYY-MM-DD') AS date_added
      FROM titles t ORDER BY t.id`);
    const people = await q.query<{ id: number; name: string; name_folded: string }>(`SELECT id, name, name_folded FROM people ORDER BY id`);
    // the link tables as flat pairs of ids (one array each): cheaper to read than a row per link
    const pairs = async (table: string, a: string, b: string) => (await q.one<{ a: number[]; b: number[] }>(
      `SELECT coalesce(array_agg(${a}::int8), '{}') AS a, coalesce(array_agg(${b}::int8), '{}') AS b FROM ${table}`))!;
    return {
      generation: Number(gen.generation), titles, people,
      genres: await pairs('title_genres', 'title_id', 'genre_id'),
      countries: await pairs('title_countries', 'title_id', 'country_id'),
      cast: await pairs('title_cast', 'person_id', 'title_id'),
      directors: await pairs('title_directors', 'person_id', 'title_id'),
    };
  }, { readOnly: true, isolation: 'repeatable read' });
  await folding.learn([...read.titles.flatMap((t) => [t.title, t.title_folded]), ...read.people.flatMap((p) => [p.name, p.name_folded])]);

  const trigramIds = new Map<string, number>();
  const titleBuilt = buildField(read.titles.map((t) => t.title_folded), folding, trigramIds);
  const peopleBuilt = buildField(read.people.map((p) => p.name_folded), folding, trigramIds);
  for (const b of [titleBuilt, peopleBuilt]) {
    b.field.postings = Array.from({ length: trigramIds.size }, (_, g) => Int32Array.from(b.grow[g] ?? []));
  }
  const byId = new Map(read.titles.map((t, i) => [Number(t.id), i]));
  const personAt = new Map(read.people.map((p, i) => [Number(p.id), i]));
  /** pairs (key, value) grouped by the key's position (keys by `at`), values mapped by `value` (dropped if unknown) */
  const group = (pairs: { a: number[]; b: number[] }, at: Map<number, number>, n: number, value: (v: number) => number | undefined) => {
    const lists: number[][] = Array.from({ length: n }, () => []);
    pairs.a.forEach((k, j) => {
      const i = at.get(Number(k)), v = value(Number(pairs.b[j]));
      if (i !== undefined && v !== undefined) lists[i].push(v);
    });
    return lists.map((l) => Int32Array.from(l));
  };
  const toTitle = (id: number) => byId.get(id);
  const asIs = (id: number) => id;
  const titles = read.titles.map(({ title_folded: _f, date_added: _d, ...card }) => card);
  const most = Math.max(read.titles.length, read.people.length);
  return {
    generation: read.generation,
    builtMs: performance.now() - t0,
    titles,
    private: {
      folding, trigramIds, titleField: titleBuilt.field, peopleField: peopleBuilt.field,
      personIds: Float64Array.from(read.people.map((p) => p.id)),
      castOf: group(read.cast, personAt, read.people.length, toTitle),
      directedBy: group(read.directors, personAt, read.people.length, toTitle),
      added: Float64Array.from(read.titles.map((t) => (t.date_added ? Date.parse(`${t.date_added}T00:00:00Z`) / 86_400_000 : NaN))),
      genres: group(read.genres, byId, read.titles.length, asIs),
      countries: group(read.countries, byId, read.titles.length, asIs),
      byId,
      counts: new Uint16Array(most),
      mark: new Int32Array(trigramIds.size),
      lastPos: new Int32Array(trigramIds.size).fill(-1),
      stamp: 0,
    },
  };
}

/** A query's trigrams: the distinct known ids (for the posting lists), and every trigram's id in order (-1 unknown). */
interface QueryTrigrams { ids: number[]; distinct: number; stamp: number }

function queryTrigrams(ix: SearchIndex, folded: string): QueryTrigrams {
  const p = ix.private;
  const all = p.folding.trigrams(folded);
  const stamp = ++p.stamp;
  const ids: number[] = [];
  for (const g of new Set(all)) {
    const id = p.trigramIds.get(g);
    if (id !== undefined) { ids.push(id); p.mark[id] = stamp; }
  }
  return { ids, distinct: new Set(all).size, stamp };
}

/**
 * word_similarity(query, document) as pg_trgm computes it (iterate_word_similarity, not strict): the best similarity
 * between the query's trigrams and any stretch of the document's trigrams in order.
 */
function wordSimilarity(ix: SearchIndex, field: Field, doc: number, q: QueryTrigrams): number {
  const { mark, lastPos } = ix.private;
  const from = field.start[doc], to = field.start[doc + 1];
  const found = (g: number) => mark[g] === q.stamp;
  let ulen2 = 0, count = 0, lower = -1, max = 0;
  for (let i = 0; i < to - from; i++) {
    const g = field.seq[from + i];
    if (lower >= 0 || found(g)) {
      if (lastPos[g] < 0) { ulen2++; if (found(g)) count++; }
      lastPos[g] = i;
    }
    if (found(g)) {
      if (lower === -1) { lower = i; ulen2 = 1; }
      let cur = sml(count, q.distinct, ulen2);
      let tmpCount = count, tmpUlen2 = ulen2;
      const prevLower = lower;
      for (let tmpLower = lower; tmpLower <= i; tmpLower++) {
        const s = sml(tmpCount, q.distinct, tmpUlen2);
        if (s > cur) { cur = s; ulen2 = tmpUlen2; lower = tmpLower; count = tmpCount; }
        const tg = field.seq[from + tmpLower];
        if (lastPos[tg] === tmpLower) { tmpUlen2--; if (found(tg)) tmpCount--; }
      }
      if (cur > max) max = cur;
      for (let tmpLower = prevLower; tmpLower < lower; tmpLower++) {
        const tg = field.seq[from + tmpLower];
        if (lastPos[tg] === tmpLower) lastPos[tg] = -1;
      }
    }
  }
  for (let i = from; i < to; i++) lastPos[field.seq[i]] = -1;
  return max;
}

/** Documents with `similarity ≥ 0.3` or `word_similarity(query, document) ≥ 0.6`, each with the greater of the two. */
function matching(ix: SearchIndex, field: Field, q: QueryTrigrams): { doc: number; score: number }[] {
  const counts = ix.private.counts;
  const touched: number[] = [];
  for (const g of q.ids) {
    for (const d of field.postings[g]) if (counts[d]++ === 0) touched.push(d);
  }
  const out: { doc: number; score: number }[] = [];
  for (const d of touched) {
    const c = counts[d];
    counts[d] = 0;
    const s = sml(c, q.distinct, field.distinct[d]);
    // word_similarity is at most shared / the query's trigrams: below the threshold and not similar, no match
    if (s < SIMILARITY_THRESHOLD && Math.fround(c / q.distinct) < WORD_SIMILARITY_THRESHOLD) continue;
    const w = wordSimilarity(ix, field, d, q);
    if (s >= SIMILARITY_THRESHOLD || w >= WORD_SIMILARITY_THRESHOLD) out.push({ doc: d, score: Math.max(s, w) });
  }
  return out;
}

/** round(x::numeric, 4) for a double: the numeric conversion keeps 15 significant digits, then half away from zero. */
const round4 = (x: number) => Number(`${Math.round(Number(`${Number(x.toPrecision(15))}e4`))}e-4`);

/** Folds the query as browse_fold() does (asking the database about characters never seen before). */
export async function foldQuery(ix: SearchIndex, q: string): Promise<string> {
  await ix.private.folding.learn([q]);
  return ix.private.folding.apply(q);
}

function passes(ix: SearchIndex, i: number, f: BrowseFilters): boolean {
  const t = ix.titles[i];
  if (f.type && t.type !== f.type) return false;
  if (f.rating && t.rating !== f.rating) return false;
  if (f.year && t.release_year !== f.year) return false;
  if (f.genreId && !ix.private.genres[i].includes(f.genreId)) return false;
  if (f.countryId && !ix.private.countries[i].includes(f.countryId)) return false;
  return true;
}

const ranks = new WeakMap<number[], Map<number, number>>();
/** Position in the popularity ranking (a snapshot's popularIds, most played first). */
function rankOf(popularIds: number[]): Map<number, number> {
  let m = ranks.get(popularIds);
  if (!m) ranks.set(popularIds, (m = new Map(popularIds.map((id, i) => [id, i]))));
  return m;
}

/** Newest added first, unknown dates last. */
const byAdded = (added: Float64Array, a: number, b: number) =>
  Number.isNaN(added[a]) ? (Number.isNaN(added[b]) ? 0 : 1) : Number.isNaN(added[b]) ? -1 : added[b] - added[a];

/**
 * One page of titles matching the filters; with a query (`folded` by foldQuery), ranked by relevance: an exact title
 * first, then the best trigram match of the title or of a cast member's or director's name, then popularity, then
 * the newest added. Without one: most played in the last 30 days first, then the newest added.
 */
export function searchTitles(ix: SearchIndex, f: BrowseFilters, folded: string | undefined, popularIds: number[],
  page: number, pageSize: number): ResultPage {
  const p = ix.private;
  const rank = rankOf(popularIds);
  const r = (i: number) => rank.get(ix.titles[i].id) ?? Infinity;
  const from = (page - 1) * pageSize;
  if (folded === undefined) {
    // the whole catalog in this order is kept per popularity ranking (a snapshot's): a page is one pass of the filters
    if (p.listed?.popularIds !== popularIds) {
      const order = Array.from(ix.titles.keys());
      order.sort((a, b) => (r(a) - r(b)) || byAdded(p.added, a, b) || ix.titles[b].id - ix.titles[a].id);
      p.listed = { popularIds, order: Int32Array.from(order) };
    }
    const titles: TitleCard[] = [];
    let total = 0;
    for (const i of p.listed.order) {
      if (!passes(ix, i, f)) continue;
      if (total >= from && total < from + pageSize) titles.push(ix.titles[i]);
      total++;
    }
    return { titles, total };
  }
  const best = new Map<number, number>();
  const offer = (i: number, score: number) => { if (!(best.get(i)! >= score)) best.set(i, score); };
  // Under three characters there are no whole trigrams to match: a prefix of the title or of a word in it.
  if ([...(f.q ?? '').trim()].length < 3) {
    p.titleField.texts.forEach((t, i) => { if (t.startsWith(folded) || t.includes(` ${folded}`)) offer(i, Math.fround(0.5)); });
  } else {
    const q = queryTrigrams(ix, folded);
    for (const m of matching(ix, p.titleField, q)) offer(m.doc, m.score);
    const people = matching(ix, p.peopleField, q)
      .sort((a, b) => (b.score - a.score) || (p.personIds[a.doc] - p.personIds[b.doc])).slice(0, PEOPLE_MATCHED);
    for (const m of people) {
      for (const i of p.castOf[m.doc]) offer(i, m.score * CAST_WEIGHT);
      for (const i of p.directedBy[m.doc]) offer(i, m.score * DIRECTOR_WEIGHT);
    }
  }
  const hits: { i: number; score: number }[] = [];
  for (const [i, score] of best) {
    if (passes(ix, i, f)) hits.push({ i, score: round4(score + (p.titleField.texts[i] === folded ? 1 : 0)) });
  }
  hits.sort((a, b) => (b.score - a.score) || (r(a.i) - r(b.i)) || byAdded(p.added, a.i, b.i) || ix.titles[a.i].id - ix.titles[b.i].id);
  return { titles: hits.slice(from, from + pageSize).map((h) => ({ ...ix.titles[h.i], score: h.score })), total: hits.length };
}

// One index per database (shared by the apps of a process over it): rebuilt when the catalog generation moves. The
// generation itself is known through the change feed (catalog_state's notify trigger) without a query; while the feed
// is down, one query per request (concurrent requests share it).
interface Holder {
  folding: Folding;
  index?: SearchIndex;
  building?: Promise<SearchIndex>;
  generation: ChangeCache<number>;
  asking?: Promise<number>;
}
const holders = new WeakMap<Db, Holder>();

function holderOf(db: Db): Holder {
  let h = holders.get(db);
  if (!h) holders.set(db, (h = { folding: new Folding(db), generation: new Map() }));
  return h;
}

/** catalog_state.generation now: from the change feed without a query, else one query shared by concurrent callers. */
export const catalogGenerationOf = (db: Db) => catalogGeneration(db, holderOf(db));

async function catalogGeneration(db: Db, h: Holder): Promise<number> {
  return readThrough(db, h.generation, 'catalog', ['catalog_state'], () => {
    h.asking ??= db.one<{ generation: number }>(`SELECT generation FROM catalog_state`)
      .then((r) => Number(r!.generation)).finally(() => { h.asking = undefined; });
    return h.asking;
  });
}

/**
 * The index of the catalog as it is now: the one held while the catalog generation has not moved, else a new one
 * (requests wait for it: a search never answers from a catalog older than its request). Read from `db`, the primary:
 * a standby could still be behind the generation the change feed announced.
 */
export async function searchIndexOf(db: Db): Promise<SearchIndex> {
  const h = holderOf(db);
  const generation = await catalogGeneration(db, h);
  if (h.index && h.index.generation >= generation) return h.index;
  h.building ??= buildSearchIndex(db, h.folding)
    .then((ix) => { if (!h.index || ix.generation >= h.index.generation) h.index = ix; return ix; })
    .finally(() => { h.building = undefined; });
  const ix = await h.building;
  // a build that began before this generation was announced (rare: a load committed during it) is not enough
  return ix.generation >= generation ? ix : searchIndexOf(db);
}

/** /browse's result page for these filters (PAGE_SIZE titles): the query folded, one page ranked. */
export async function findTitles(ix: SearchIndex, f: BrowseFilters, popularIds: number[], page: number): Promise<ResultPage> {
  const folded = f.q ? await foldQuery(ix, f.q.trim()) : undefined;
  return searchTitles(ix, f, folded, popularIds, page, PAGE_SIZE);
}
