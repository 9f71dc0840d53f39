// The catalog reports on the real Kaggle file, loaded through the titles ETL. Known counts from the dataset's README
// (8,807 titles: 6,131 movies, 2,676 TV shows; 42 genres), everything else against counts this test computes itself
// from the CSV with its own minimal RFC 4180 reader — an oracle independent of the ETL and of the report SQL.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, runReport, streamCsv, checkReportSql, CatalogError, type Catalog, type ResultCache } from '../server/reports/engine.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { realTitlesCsv } from './helpers/dataset.ts';
import { csvRecords } from './helpers/csv.ts';
import { waitFor } from './helpers/sync.ts';
import { createUser, sessionCookie } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';

const FILE = realTitlesCsv();
const t = useDatabase(test);
let catalog: Catalog;

type Rec = Record<string, string>;
const list = (s: string) => [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))];
function countBy<T>(items: T[], key: (x: T) => (string | number | null)[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const it of items) for (const k of key(it)) if (k !== null) m.set(String(k), (m.get(String(k)) ?? 0) + 1);
  return m;
}
let recs: Rec[];

test.before(async () => {
  recs = csvRecords(fs.readFileSync(FILE, 'utf8'));
  await loadTitles(t.db, FILE);
  catalog = loadCatalog();
});

async function run(id: string, params: Record<string, string | string[]> = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) q.append(k, x);
  return (await runReport(t.db, catalog, id, q, { role: 'analyst', now: new Date(), cache: false })).rows as Record<string, any>[];
}
function assertCounts(rows: Record<string, any>[], keyCol: string, countCol: string, expected: Map<string, number>, label: string) {
  for (const r of rows) assert.is(r[countCol], expected.get(String(r[keyCol])), `${label}: ${r[keyCol]}`);
}

test('the oracle reads the file as its README describes', () => {
  assert.is(recs.length, 8807);
});

test('titles by type: 8,807 = 6,131 movies + 2,676 TV shows', async () => {
  const rows = await run('catalog_titles_by_type');
  assert.equal(rows.map((r) => [r.type, r.titles]), [['Movie', 6131], ['TV Show', 2676]]);
  assert.is(rows[0].share, Math.round((6131 / 8807) * 10_000) / 10_000);
  const dramas = await run('catalog_titles_by_type', { genre: 'Dramas' });
  const oracle = recs.filter((r) => list(r.listed_in).includes('Dramas')).length;
  assert.is(dramas.reduce((s, r) => s + r.titles, 0), oracle);
});

test('top genres: 42 genres with the file\'s counts, filters by type and country', async () => {
  const rows = await run('catalog_top_genres', { limit: '100' });
  assert.is(rows.length, 42);
  const expected = countBy(recs, (r) => list(r.listed_in));
  assert.is(expected.size, 42);
  assertCounts(rows, 'genre', 'titles', expected, 'genre');
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].titles >= rows[i].titles, 'ranked by titles');
  assert.equal(rows.slice(0, 2).map((r) => [r.genre, r.titles]), [['International Movies', 2752], ['Dramas', 2427]]);
  const tv = await run('catalog_top_genres', { type: 'TV Show', limit: '100' });
  assertCounts(tv, 'genre', 'titles', countBy(recs.filter((r) => r.type === 'TV Show'), (r) => list(r.listed_in)), 'tv genre');
  const india = await run('catalog_top_genres', { country: 'India', limit: '5' });
  assertCounts(india, 'genre', 'titles', countBy(recs.filter((r) => list(r.country).includes('India')), (r) => list(r.listed_in)), 'india genre');
  assert.is(india.length, 5);
});

test('top countries, directors and cast match the file', async () => {
  const countries = await run('catalog_top_countries', { limit: '20' });
  const expC = countBy(recs, (r) => list(r.country));
  assertCounts(countries, 'country', 'titles', expC, 'country');
  assert.equal([countries[0].country, countries[0].titles], ['United States', 3690]);
  // the 20th row holds the 20th largest count
  assert.is(countries[19].titles, [...expC.values()].sort((a, b) => b - a)[19]);
  const directors = await run('catalog_top_directors');
  const expD = countBy(recs, (r) => list(r.director));
  assertCounts(directors, 'director', 'titles', expD, 'director');
  assert.is(directors[0].titles, Math.max(...expD.values()));
  const cast = await run('catalog_top_cast', { type: 'Movie', limit: '10' });
  const expCast = countBy(recs.filter((r) => r.type === 'Movie'), (r) => list(r.cast));
  assertCounts(cast, 'cast_member', 'titles', expCast, 'cast');
  assert.is(cast[0].titles, Math.max(...expCast.values()));
});

test('titles added per year, release years and ratings match the file', async () => {
  const added = await run('catalog_added_per_year');
  const expAdded = countBy(recs, (r) => [r.date_added.trim() ? `${r.date_added.trim().slice(-4)}|${r.type}` : null]);
  for (const r of added) assert.is(r.titles, expAdded.get(`${r.year_added}|${r.type}`), `added ${r.year_added} ${r.type}`);
  assert.is(added.reduce((s, r) => s + r.titles, 0), 8807 - 10); // 10 titles have no date_added
  const years = await run('catalog_release_years', { since: '1900' });
  assert.is(years.reduce((s, r) => s + r.titles, 0), 8807);
  const expYears = countBy(recs, (r) => [`${r.release_year}|${r.type}`]);
  for (const r of years) assert.is(r.titles, expYears.get(`${r.release_year}|${r.type}`), `year ${r.release_year}`);
  const ratings = await run('catalog_ratings');
  // empty ratings and the 3 durations misplaced in the rating column are unrated
  const expR = countBy(recs, (r) => [`${!r.rating.trim() || /min$/.test(r.rating) ? 'unrated' : r.rating.trim()}|${r.type}`]);
  for (const r of ratings) assert.is(r.titles, expR.get(`${r.rating}|${r.type}`), `rating ${r.rating} ${r.type}`);
  assert.is(ratings.filter((r) => r.rating === 'unrated').reduce((s, r) => s + r.titles, 0), 7);
});

test('movie durations and TV seasons match the file', async () => {
  const durations = await run('catalog_movie_durations');
  const minutes = (r: Rec) => { const m = /^(\d+) min$/.exec(r.duration.trim() || r.rating.trim()); return m ? Number(m[1]) : null; };
  const movies = recs.filter((r) => r.type === 'Movie');
  const expBins = countBy(movies, (r) => { const m = minutes(r); return [m === null ? null : Math.floor(m / 10) * 10]; });
  assertCounts(durations, 'minutes_from', 'movies', expBins, 'duration bin');
  assert.is(durations.reduce((s, r) => s + r.movies, 0), 6131); // including the 3 repaired from the rating column
  const seasons = await run('catalog_tv_seasons');
  const expS = countBy(recs.filter((r) => r.type === 'TV Show'), (r) => [Number(/^(\d+) Seasons?$/.exec(r.duration.trim())?.[1] ?? NaN) || null]);
  assertCounts(seasons, 'seasons', 'tv_shows', expS, 'seasons');
  assert.is(seasons.reduce((s, r) => s + r.tv_shows, 0), 2676);
});

test('a @catalog report that reads another table, or names a mart, is refused at start', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-catalog-reports-'));
  try {
    fs.mkdirSync(path.join(dir, 'marts'));
    const chart = '-- @chart bar x=type:N y=n:Q\n';
    fs.writeFileSync(path.join(dir, 'ok.sql'), `-- @title Ok\n-- @catalog\n${chart}SELECT t.type, count(*) AS n FROM titles t JOIN title_cast x ON x.title_id = t.id GROUP BY 1`);
    fs.writeFileSync(path.join(dir, 'sneaky.sql'), `-- @title Sneaky\n-- @catalog\n${chart}SELECT t.type, count(*) AS n FROM titles t JOIN watch_events w ON w.title_id = t.id GROUP BY 1`);
    await checkReportSql(t.db, loadCatalog(dir)).then(() => assert.unreachable('should fail'), (e: Error) => {
      assert.match(e.message, /sneaky\.sql:1 @catalog, but the SQL reads watch_events/);
      assert.not.match(e.message, /ok\.sql/);
    });
    fs.writeFileSync(path.join(dir, 'marts', 'mart_x.sql'), '-- @mart mart_x\n-- @unique type\n-- @refresh 0 * * * *\nSELECT type FROM titles GROUP BY 1');
    fs.writeFileSync(path.join(dir, 'sneaky.sql'), `-- @title Sneaky\n-- @catalog\n${chart}SELECT type, count(*) AS n FROM mart_x GROUP BY 1`);
    assert.throws(() => loadCatalog(dir), (e: Error) => e instanceof CatalogError && /sneaky\.sql:2 @catalog reports read only catalog tables, not marts \(mart_x\)/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the catalog generation moves once per transaction that writes the catalog, however many statements', async () => {
  const gen = async () => Number((await t.db.one<{ g: string }>('SELECT generation AS g FROM catalog_state'))!.g);
  const g0 = await gen();
  await t.db.tx(async (q) => { for (let i = 0; i < 50; i++) await q.query(`INSERT INTO genres (name) VALUES ('fuzzgen ${i}')`); });
  assert.is(await gen(), g0 + 1);
  await t.db.tx(async (q) => {
    await q.query('SAVEPOINT s');
    await q.query(`DELETE FROM genres WHERE name = 'fuzzgen 0'`);
    await q.query('ROLLBACK TO SAVEPOINT s'); // the bump inside is undone with it…
    await q.query(`DELETE FROM genres WHERE name LIKE 'fuzzgen %'`); // …and made again by the next write
  });
  assert.is(await gen(), g0 + 2);
  await t.db.query(`SELECT count(*) FROM titles`);
  assert.is(await gen(), g0 + 2, 'reads do not move it');
});

// last: it adds a title
test('catalog reports are cached under the catalog generation; a titles load that changes the catalog invalidates them', async () => {
  const cache: ResultCache = new Map();
  const opts = () => ({ role: 'analyst' as const, now: new Date(), cache });
  const q = () => new URLSearchParams('limit=100');
  const first = await runReport(t.db, catalog, 'catalog_top_genres', q(), opts());
  const second = await runReport(t.db, catalog, 'catalog_top_genres', q(), opts());
  assert.is(first.cached, false);
  assert.is(second.cached, true, 'the second request is served from the cache');
  assert.is(second.etag, first.etag);
  const loadedAt = (await t.db.one<{ loaded_at: Date }>('SELECT loaded_at FROM catalog_state'))!.loaded_at;
  assert.is(first.asOf, loadedAt.toISOString(), 'as of the last titles load');
  assert.is(first.nextRefresh, null);
  const csv = await streamCsv(t.db, catalog, 'catalog_top_genres', q(), { ...opts(), ifNoneMatch: (e) => e === first.etag });
  assert.is(csv.etag, first.etag, 'the CSV has the same generation-based validator');
  assert.is(csv.body, null, 'If-None-Match with it answers without running the SQL');

  // reloading the same file changes nothing: the cache keeps serving
  const same = await loadTitles(t.db, FILE);
  assert.is(same.inserted + same.updated + same.removed, 0);
  assert.is((await runReport(t.db, catalog, 'catalog_top_genres', q(), opts())).cached, true);

  // a load that adds a Drama: the next request runs the SQL and counts it
  const header = Object.keys(recs[0]);
  const rec: Rec = { ...Object.fromEntries(header.map((h) => [h, ''])), show_id: 's990001', type: 'Movie', title: 'Cache Test',
    release_year: '2021', duration: '90 min', listed_in: 'Dramas', cast: 'Cache Actor' };
  const csvText = [header, header.map((h) => rec[h])].map((r) => r.map((v) => `"${v.replace(/"/g, '""')}"`).join(',')).join('\n') + '\n';
  await waitFor('the change feed to be live', () => t.db.changes.token('catalog_state') !== null);
  const before = t.db.changes.token('catalog_state');
  const added = await loadTitles(t.db, { name: 'one-more.csv', stream: Readable.from([Buffer.from(csvText)]) });
  assert.is(added.inserted, 1);
  // the loader may run in another process: its commit reaches this one as a notification, as it would there
  await waitFor('the catalog change to be heard', () => t.db.changes.token('catalog_state') !== before);
  const after = await runReport(t.db, catalog, 'catalog_top_genres', q(), opts());
  assert.is(after.cached, false, 'the titles load invalidated the cached result');
  assert.is.not(after.etag, first.etag);
  const dramas = (rs: Record<string, any>[]) => rs.find((r) => r.genre === 'Dramas')!.titles;
  assert.is(dramas(after.rows), dramas(first.rows) + 1);
  assert.ok(after.asOf > first.asOf, 'as of the new load');
  assert.is((await runReport(t.db, catalog, 'catalog_top_genres', q(), opts())).cached, true);
  // over HTTP: the ETag answers 304, and the page says what the data is as of
  const app = createApp({ db: t.db, log: () => {} });
  const Cookie = await sessionCookie(t.db, (await createUser(t.db, { role: 'analyst' })).id);
  const api = await app.request('/api/reports/catalog_top_genres?limit=100', { headers: { Cookie } });
  assert.is(api.status, 200);
  assert.is(api.headers.get('etag'), `"${after.etag}-api"`);
  assert.is((await app.request('/api/reports/catalog_top_genres?limit=100', { headers: { Cookie, 'If-None-Match': api.headers.get('etag')! } })).status, 304);
  const page = await (await app.request('/reports/catalog_top_genres?limit=100', { headers: { Cookie } })).text();
  assert.match(page, `Catalog as of its last titles load, <time datetime="${after.asOf}">`);
  // reports that read more than the catalog are not @catalog; a @catalog report that reads another table is refused at start
  assert.ok([...catalog.reports.values()].filter((r) => r.catalog).every((r) => r.id.startsWith('catalog_')));
});

test.run();
