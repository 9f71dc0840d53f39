// Search from the in-memory index (server/browse/search-index.ts) over the real titles file: the same pages as the
// pg_trgm SQL it replaced (kept here as the reference: ids, scores, totals, with filters and pages), the same folding
// as browse_fold(), ranking cases (typos, cast, directors, accents and case), and an index that follows the catalog:
// a titles load or a plain write is seen by the next search.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable } from 'node:stream';
import sql, { join, empty, raw } from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createApp } from '../server/app.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from '../etl/titles/demo-step.ts';
import { browseSnapshot, createBrowseCache, PAGE_SIZE, type BrowseFilters } from '../server/browse/catalog.ts';
import { findTitles, foldQuery, searchIndexOf } from '../server/browse/search-index.ts';
import type { Db } from '../server/db/index.ts';
import { waitFor } from './helpers/sync.ts';

const t = useDatabase(test);
const NOW = new Date('2026-11-20T12:00:00Z');
let app: ReturnType<typeof createApp>;

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  app = createApp({ db: t.db, log: () => {}, now: () => NOW });
  await waitFor('the change feed to be live', () => t.db.changes.token('catalog_state') !== null);
});

/** The pg_trgm search /browse ran before the index (migrations 0010 and 0018): the reference the index must equal. */
async function sqlSearch(db: Db, f: BrowseFilters, popularIds: number[], page: number) {
  // without JIT: PostgreSQL 15 as Debian ships it compiles these plans (seconds each), the embedded one has no JIT
  const run = (s: ReturnType<typeof sql>) => db.tx(async (q) => {
    await q.query('SET LOCAL jit = off');
    return q.query<{ id: number; score?: string; total: number }>(s);
  });
  const where = [
    f.type ? sql`t.type = ${f.type}` : empty,
    f.genreId ? sql`EXISTS (SELECT 1 FROM title_genres tg WHERE tg.title_id = t.id AND tg.genre_id = ${f.genreId})` : empty,
    f.countryId ? sql`EXISTS (SELECT 1 FROM title_countries tc WHERE tc.title_id = t.id AND tc.country_id = ${f.countryId})` : empty,
    f.rating ? sql`t.rating = ${f.rating}` : empty,
    f.year ? sql`t.release_year = ${f.year}` : empty,
  ].filter((x) => x !== empty);
  const filter = where.length ? sql`AND ${join(where, ' AND ')}` : empty;
  const pop = sql`pop AS (SELECT id, rank FROM unnest(${popularIds}::bigint[]) WITH ORDINALITY AS p(id, rank))`;
  const offset = (page - 1) * PAGE_SIZE;
  if (!f.q) {
    return run(sql`WITH ${pop}
      SELECT t.id, count(*) OVER () AS total FROM titles t LEFT JOIN pop ON pop.id = t.id WHERE true ${filter}
      ORDER BY pop.rank NULLS LAST, t.date_added DESC NULLS LAST, t.id DESC LIMIT ${PAGE_SIZE} OFFSET ${offset}`);
  }
  const q = f.q.trim();
  const short = [...q].length < 3;
  const score = (col: string) => sql`greatest(similarity(${raw(col)}, q.q), word_similarity(q.q, ${raw(col)}))`;
  const titleHits = short
    ? sql`SELECT t.id, 0.5::real AS score FROM titles t, q WHERE t.title_folded LIKE q.pattern || '%' OR t.title_folded LIKE '% ' || q.pattern || '%'`
    : sql`SELECT t.id, ${score('t.title_folded')} AS score FROM titles t, q WHERE t.title_folded % q.q OR q.q <% t.title_folded`;
  const peopleHits = short ? sql`SELECT NULL::bigint AS id, 0::real AS score WHERE false`
    : sql`SELECT p.id, ${score('p.name_folded')} AS score FROM people p, q WHERE p.name_folded % q.q OR q.q <% p.name_folded
          ORDER BY score DESC, id LIMIT 40`;
  return run(sql`
    WITH q AS (SELECT browse_fold(${q}) AS q,
                      replace(replace(replace(browse_fold(${q}), '\\', '\\\\'), '%', '\\%'), '_', '\\_') AS pattern),
    ${pop}, title_hits AS (${titleHits}), people_hits AS (${peopleHits}),
    hits AS (SELECT id, max(score) AS score FROM (
      SELECT id, score FROM title_hits
      UNION ALL SELECT tc.title_id, ph.score * 0.9 FROM people_hits ph JOIN title_cast tc ON tc.person_id = ph.id
      UNION ALL SELECT td.title_id, ph.score * 0.92 FROM people_hits ph JOIN title_directors td ON td.person_id = ph.id) x GROUP BY id)
    SELECT t.id, round((h.score + CASE WHEN t.title_folded = q.q THEN 1 ELSE 0 END)::numeric, 4) AS score, count(*) OVER () AS total
    FROM hits h JOIN titles t ON t.id = h.id CROSS JOIN q LEFT JOIN pop ON pop.id = t.id
    WHERE true ${filter}
    ORDER BY 2 DESC, pop.rank NULLS LAST, t.date_added DESC NULLS LAST, t.id
    LIMIT ${PAGE_SIZE} OFFSET ${offset}`);
}

const cardIds = (body: string) => [...body.matchAll(/<li class="title-card"><a href="\/titles\/(\d+)"/g)].map((m) => Number(m[1]));
const search = async (q: string) => cardIds(await (await app.request(`/browse?${new URLSearchParams({ q })}`)).text());
const idOf = async (title: string) => (await t.db.one<{ id: number }>(sql`SELECT id FROM titles WHERE title = ${title}`))!.id;

test('every page equals the pg_trgm search it replaced: ids in order, scores, totals, with filters and pages', async () => {
  // some popularity, so that ties between equal scores are broken by it as well as by date and id
  const popular = (await t.db.query<{ id: number }>(`SELECT id FROM titles ORDER BY md5(id::text) LIMIT 300`)).map((r) => r.id);
  const snap = await browseSnapshot(t.db, createBrowseCache(), NOW);
  const index = await searchIndexOf(t.db);
  const words = (await t.db.query<{ w: string }>(`SELECT DISTINCT lower(w) AS w FROM titles, regexp_split_to_table(title, '\\s+') AS w
    WHERE length(w) >= 4 ORDER BY 1`)).map((r) => r.w).filter((_, i) => i % 320 === 0); // a sample: each comparison is a pg_trgm query (0.1-0.4 s on a loaded PostgreSQL 15)
  const queries = ['stranger thigns', 'strnger things', 'martin scorsesee', 'shahrukh khan', 'winona ryder', 'amélie', 'ÉLITE', 'love',
    'the', 'Oz', 'a', 'é', '7', '100%_', 'ab\\c', '¿qué?', 'Pokémon', 'naruto shippuden', 'spider-man', '  x  ',
    ...words.flatMap((w) => [w, `${w.slice(0, 1)}${w[2]}${w[1]}${w.slice(3)}`])];
  const filters: Omit<BrowseFilters, 'q'>[] = [{}, { type: 'Movie' }, { type: 'TV Show', genreId: snap.genres.get('Crime TV Shows') },
    { countryId: snap.countries.get('India'), rating: 'TV-14' }, { year: 2019 }];
  let compared = 0;
  for (const q of queries) {
    for (const [k, f] of filters.entries()) {
      if (k > 1 && q.length > 5 && compared % 3) { compared++; continue; } // every filter, not with every query
      for (const page of q === 'the' || q === 'a' ? [1, 2, 5] : [1]) {
        const want = await sqlSearch(t.db, { ...f, q }, popular, page);
        const got = await findTitles(index, { ...f, q }, popular, page);
        const label = `${JSON.stringify({ ...f, q })} page ${page}`;
        assert.equal(got.titles.map((x) => `${x.id}:${x.score}`), want.map((x) => `${x.id}:${Number(x.score)}`), label);
        if (want.length) assert.is(got.total, Number(want[0].total), label);
        compared++;
      }
    }
  }
  // without a query: popularity, then the newest added, then the id; filters and pages
  for (const f of filters) {
    for (const page of [1, 3]) {
      const want = await sqlSearch(t.db, f, popular, page);
      const got = await findTitles(index, f, popular, page);
      assert.equal(got.titles.map((x) => x.id), want.map((x) => x.id), JSON.stringify(f));
      assert.is(got.total, Number(want[0]?.total ?? got.total));
    }
  }
  assert.ok(compared > 150, `${compared} pages compared`);
});

test('the query is folded as browse_fold() folds: every title and name of the catalog, and odd characters', async () => {
  const index = await searchIndexOf(t.db);
  const rows = await t.db.query<{ raw: string; folded: string }>(`SELECT title AS raw, title_folded AS folded FROM titles
    UNION ALL SELECT name, name_folded FROM people
    UNION ALL SELECT x, browse_fold(x) FROM unnest(ARRAY['ÆSIR Œuvre', 'Straße', 'İstanbul', 'Ǆemal', 'ﬁlm', '½ ①', 'Ωmega ΣΑΣ', 'Жизнь', '東京']) x`);
  const wrong = [];
  for (const r of rows) if (await foldQuery(index, r.raw) !== r.folded) wrong.push(r);
  assert.equal(wrong.slice(0, 5), [], `${wrong.length} of ${rows.length} folded differently`);
});

test('ranking: typos, case and accents find the title first; cast and directors bring their titles', async () => {
  const st = await idOf('Stranger Things');
  for (const q of ['stranger thigns', 'STRANGER THINGS', 'strnger things', 'Stránger Things']) assert.is((await search(q))[0], st, q);
  // a cast member's name with a typo: her titles, Stranger Things among them
  const winona = await search('winona rydr');
  assert.ok(winona.includes(st), 'cast typo');
  // a director: their titles, and only titles linked to a matching person or title
  const scorsese = await t.db.query<{ title_id: number }>(`SELECT td.title_id FROM title_directors td JOIN people p ON p.id = td.person_id
    WHERE p.name = 'Martin Scorsese'`);
  const found = await search('scorsese');
  for (const r of scorsese) assert.ok(found.includes(r.title_id), `Scorsese's title ${r.title_id}`);
  // accents and case both ways
  const pokemon = await t.db.query<{ id: number }>(`SELECT id FROM titles WHERE title ILIKE 'Pok_mon%'`);
  assert.ok(pokemon.length > 0);
  const [a, b, c] = [await search('pokemon'), await search('POKÉMON'), await search('Pokémon')];
  assert.equal(a, b);
  assert.equal(a, c);
  assert.ok(pokemon.every((p) => a.includes(p.id)), 'every Pokémon title');
  // odd characters: NUL is refused before any route (the input guard), a character the catalog lacks is learnt
  assert.is((await app.request('/browse?q=%00stranger')).status, 400);
  assert.is((await app.request('/browse?q=%F0%9F%8E%AC+things')).status, 200);
});

test('the index follows the catalog: a titles load and a plain write are seen by the next search', async () => {
  const before = await searchIndexOf(t.db);
  assert.is(await searchIndexOf(t.db), before, 'one index per catalog generation');
  assert.equal(await search('zanzibar quokka'), []);
  const csv = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description\n'
    + 's90001,Movie,The Zanzibar Quokka,Imelda Quistgaard,"Oskar Vantongeren",Tanzania,"November 1, 2026",2026,PG,95 min,Comedies,A quokka in Zanzibar.\n';
  await loadTitles(t.db, { name: 'one-more.csv', stream: Readable.from([Buffer.from(csv)]) });
  const id = await idOf('The Zanzibar Quokka');
  // the load's notification may take a moment to arrive; then the very next search sees the title, by title or person
  await waitFor('the new generation', async () => (await searchIndexOf(t.db)).generation > before.generation);
  assert.is((await search('zanzibar quoka'))[0], id, 'title with a typo');
  assert.ok((await search('imelda quistgard')).includes(id), 'its director');
  assert.ok((await search('oskar vantongeren')).includes(id), 'its cast');
  const tanzania = cardIds(await (await app.request('/browse?type=movie&country=Tanzania')).text());
  assert.ok(tanzania.includes(id), 'filters see it too');
  // a plain write to the catalog (a rename): the old title is no longer found, the new one is
  const gen = (await searchIndexOf(t.db)).generation;
  await t.db.query(sql`UPDATE titles SET title = 'Quokka Nights in Pemba' WHERE id = ${id}`);
  await waitFor('the rename', async () => (await searchIndexOf(t.db)).generation > gen);
  assert.is((await search('quokka nigths pemba'))[0], id);
  assert.not.ok((await search('zanzibar quokka')).includes(id), 'the old title is gone (the person still matches nobody)');
});

test('a catalog of one title, then none: searches answer, nothing stale', async () => {
  await t.db.query(`TRUNCATE titles, people, title_cast, title_directors, title_genres, title_countries CASCADE`);
  await waitFor('the empty catalog', async () => (await searchIndexOf(t.db)).titles.length === 0);
  const res = await app.request('/browse?q=stranger+things');
  assert.is(res.status, 200);
  assert.match(await res.text(), /Nothing matches/);
});

test.run();
