// Titles ETL on small fixtures (test/fixtures/etl, built by make_fixtures.py from the real file): every encoding,
// line-end, date and header variant loads to the same catalog; every kind of bad input is refused with file, line
// and problem and leaves the database exactly as it was.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { useDatabase, createDatabase, serverUrl } from './helpers/db.ts';
import { realTitlesCsv } from './helpers/dataset.ts';
import { createDb, withConnection, type Db } from '../server/db/index.ts';
import { loadTitles, type LoadSummary } from '../etl/titles/load.ts';
import { TitlesInputError } from '../etl/titles/errors.ts';

const t = useDatabase(test);
const root = path.resolve(import.meta.dirname, '..');
const fx = (name: string) => path.join(root, 'test/fixtures/etl', name);
const REAL = realTitlesCsv();

/** Everything the ETL writes, in a comparable form. */
async function snapshot() {
  return snapshotOf(t.db);
}

async function snapshotOf(db: Db) {
  const rows = await db.query(`
    SELECT t.show_id, t.type, t.title, t.release_year, t.rating, t.duration_minutes, t.seasons, t.date_added, t.description,
      ARRAY(SELECT g.name FROM title_genres x JOIN genres g ON g.id = x.genre_id WHERE x.title_id = t.id ORDER BY 1) AS genres,
      ARRAY(SELECT c.name FROM title_countries x JOIN countries c ON c.id = x.country_id WHERE x.title_id = t.id ORDER BY 1) AS countries,
      ARRAY(SELECT p.name FROM title_cast x JOIN people p ON p.id = x.person_id WHERE x.title_id = t.id ORDER BY x.ord) AS cast_names,
      ARRAY(SELECT p.name FROM title_directors x JOIN people p ON p.id = x.person_id WHERE x.title_id = t.id ORDER BY x.ord) AS directors
    FROM titles t ORDER BY t.show_id`);
  return JSON.stringify(rows);
}

async function counts() {
  return t.db.one(`SELECT (SELECT count(*) FROM titles) AS titles, (SELECT count(*) FROM genres) AS genres,
    (SELECT count(*) FROM people) AS people, (SELECT count(*) FROM countries) AS countries,
    (SELECT count(*) FROM title_cast) AS cast_links, (SELECT count(*) FROM title_genres) AS genre_links`);
}

async function refused(input: Parameters<typeof loadTitles>[1], pattern: RegExp, line?: number, opts = {}) {
  const before = await snapshot();
  try {
    await loadTitles(t.db, input, opts);
  } catch (e: any) {
    assert.instance(e, TitlesInputError, e.stack);
    assert.match(e.message, pattern);
    if (typeof input === 'string') assert.ok(e.message.startsWith(input), `names the file: ${e.message}`);
    assert.is(e.line, line, `line in ${e.message}`);
    assert.is(await snapshot(), before, 'the database is exactly as before');
    return e as TitlesInputError;
  }
  assert.unreachable(`accepted ${typeof input === 'string' ? input : input.name}`);
  throw new Error('unreachable');
}

let base: string;

test('the base fixture loads: real rows, their defects fixed and counted', async () => {
  const s = await loadTitles(t.db, fx('base.csv'));
  assert.is(s.inserted, 12);
  assert.is(s.rows, 12);
  assert.equal(s.rejects, []);
  assert.is(s.encoding, 'UTF-8');
  assert.is(s.lineEnds, 'LF');
  assert.is(s.defects.rating_holds_duration, 1);
  assert.is(s.defects.list_empty_items, 2); // ", South Korea" and "United Kingdom,"
  const swapped = await t.db.one(`SELECT rating, duration_minutes FROM titles WHERE show_id = 's5542'`);
  assert.equal(swapped, { rating: null, duration_minutes: 74 });
  const s194 = await t.db.one(`SELECT array_agg(c.name) AS c FROM title_countries x JOIN countries c ON c.id = x.country_id
    JOIN titles t ON t.id = x.title_id WHERE t.show_id = 's194'`);
  assert.equal(s194!.c, ['South Korea']);
  const nl = await t.db.one(`SELECT description FROM titles WHERE show_id = 's8202'`);
  assert.ok(nl!.description.includes('\n'), 'a newline inside a quoted description is kept');
  const noDate = await t.db.one(`SELECT date_added FROM titles WHERE show_id = 's6067'`);
  assert.is(noDate!.date_added, null);
  const s2 = await t.db.one(`SELECT t.type, t.seasons, t.date_added, array_length(ARRAY(SELECT 1 FROM title_cast x WHERE x.title_id = t.id), 1) AS cast_n
    FROM titles t WHERE show_id = 's2'`);
  assert.equal(s2, { type: 'TV Show', seasons: 2, date_added: '2021-09-24', cast_n: 19 });
  base = await snapshot();
});

test('loading the same file again changes nothing: all unchanged', async () => {
  const before = await counts();
  const s = await loadTitles(t.db, fx('base.csv'));
  assert.equal([s.inserted, s.updated, s.unchanged, s.removed], [0, 0, 12, 0]);
  assert.equal(await counts(), before);
  assert.is(await snapshot(), base);
});

// Each of these holds the same 12 titles in another shape: loading it over the base must find them all unchanged.
const SAME: [string, (s: LoadSummary) => void][] = [
  ['bom-crlf.csv', (s) => { assert.is(s.encoding, 'UTF-8 with BOM'); assert.is(s.lineEnds, 'CRLF'); assert.is(s.defects.bom, 1); assert.is(s.defects.crlf_line_ends, 13); }],
  ['windows-1252.csv', (s) => { assert.match(s.encoding, /^Windows-1252 \(detected/); assert.ok(s.defects.windows_1252_lines! >= 2); }],
  ['mixed-encoding.csv', (s) => { assert.match(s.encoding, /^mixed: UTF-8 with 2 lines in Windows-1252/); assert.equal(s.repairedEncodingLines, [6, 7]); }],
  ['base.csv.gz', (s) => assert.is(s.container, 'gzip')],
  ['archive.zip', (s) => { assert.is(s.container, 'zip'); assert.match(s.source, /archive\.zip:netflix_titles\.csv$/); }],
  ['dates-d-mon-yy.csv', (s) => assert.equal(s.dateFormats, { 'D-Mon-YY': 11 })],
  ['dates-iso.csv', (s) => assert.equal(s.dateFormats, { 'YYYY-MM-DD': 11 })],
  ['dates-mdy.csv', (s) => assert.is(s.dateOrder!.order, 'mdy')],
  ['dates-dmy.csv', (s) => { assert.is(s.dateOrder!.order, 'dmy'); assert.match(s.dateOrder!.reason, /read only as day\/month\/year/); }],
  ['header-variants.csv', (s) => {
    assert.is(s.header.mode, 'names');
    assert.ok(s.header.notes.some((n) => /"casts" read as cast/.test(n)));
    assert.ok(s.header.notes.some((n) => /"genre" read as listed_in/.test(n)));
    assert.ok(s.header.notes.some((n) => /"Descripton" read as description/.test(n)));
    assert.ok(s.header.notes.some((n) => /empty-named column ignored/.test(n)));
  }],
  ['header-unknown.csv', (s) => { assert.is(s.header.mode, 'position'); assert.match(s.header.notes[0], /loaded by position/); }],
  ['no-header.csv', (s) => assert.is(s.header.mode, 'no header')],
  ['reordered.csv', (s) => assert.is(s.header.mode, 'names')],
];
for (const [file, check] of SAME) {
  test(`${file}: same titles, all unchanged`, async () => {
    const s = await loadTitles(t.db, fx(file));
    assert.equal([s.inserted, s.updated, s.unchanged, s.rejects.length], [0, 0, 12, 0], JSON.stringify(s, null, 1));
    check(s);
    assert.is(await snapshot(), base);
  });
}

test('stdin: plain and gzip streams load the same', async () => {
  for (const file of ['base.csv', 'base.csv.gz']) {
    const s = await loadTitles(t.db, { name: 'stdin', stream: fs.createReadStream(fx(file)) });
    assert.equal([s.inserted, s.updated, s.unchanged], [0, 0, 12]);
  }
  assert.is(await snapshot(), base);
});

test('--encoding windows-1252 reads a Windows-1252 file; --encoding utf-8 refuses it naming the line', async () => {
  const s = await loadTitles(t.db, fx('windows-1252.csv'), { encoding: 'windows-1252' });
  assert.is(s.unchanged, 12);
  assert.is(s.encoding, 'Windows-1252 (--encoding)');
  await refused(fx('windows-1252.csv'), /:6: invalid UTF-8 \(byte 0x[0-9A-F]{2}\)/, 6, { encoding: 'utf-8' });
});

test('ambiguous slash dates: read month-first and said so; --date-order dmy reads them day-first', async () => {
  const s = await loadTitles(t.db, fx('dates-ambiguous.csv'), { dryRun: true });
  assert.is(s.dateOrder!.order, 'mdy');
  assert.match(s.dateOrder!.reason, /no date in the file tells day from month/);
  const d = await loadTitles(t.db, fx('dates-ambiguous.csv'), { dateOrder: 'dmy' });
  assert.is(d.dateOrder!.reason, '--date-order');
  // s1 was added September 25, 2021: here "9/12/2021", which day-first is 9 December 2021
  assert.is((await t.db.one(`SELECT date_added FROM titles WHERE show_id = 's1'`))!.date_added, '2021-12-09');
  await loadTitles(t.db, fx('base.csv'));
  assert.is(await snapshot(), base);
});

test('unparseable dates reject their rows with the line; the rest load', async () => {
  const s = await loadTitles(t.db, fx('dates-bad.csv'), { dryRun: true });
  assert.equal(s.rejects.map((r) => [r.line, r.showId]), [[4, 's3'], [7, 's20']]);
  assert.match(s.rejects[0].reason, /date_added "sometime in 2019" is not a date/);
  assert.match(s.rejects[1].reason, /"2021-02-30"/);
  assert.is(s.loaded, 10);
});

test('fixable defects are fixed and counted; bad rows rejected with lines; --dry-run writes nothing', async () => {
  const before = await snapshot();
  const s = await loadTitles(t.db, fx('defects.csv'), { dryRun: true });
  assert.is(s.dryRun, true);
  assert.is(await snapshot(), before, 'dry run wrote nothing');
  assert.is(s.inserted, 4);
  assert.equal(s.rejects.map((r) => r.line), [6, 7, 8, 9, 10]);
  assert.match(s.rejects[2].reason, /show_id "d1" already appears at line 2/);
  assert.match(s.rejects[3].reason, /show_id is empty/);
  assert.match(s.rejects[4].reason, /type "Cartoon"/);
  assert.equal(s.defects, {
    whitespace_trimmed: 1, list_empty_items: 3, rating_holds_duration: 1, type_spelling: 1, duration_spelling: 2,
    blank_lines: 1, stray_quotes: 1,
  });
});

test('a show_id repeated with other spacing or quoting is still found (the CSV stage only skips the search when none can repeat)', async () => {
  const header = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description';
  const row = (id: string, title: string) => `${id},Movie,${title},,,,,2020,PG,90 min,Dramas,x`;
  const load = (rows: string[]) => loadTitles(t.db, { name: 'ids.csv', stream: Readable.from([Buffer.from([header, ...rows].join('\n') + '\n')]) }, { dryRun: true });
  const clean = await load([row('r1', 'A'), row('r2', 'B'), row('r3', 'C')]);
  assert.equal(clean.rejects, []);
  assert.is(clean.loaded, 3);
  const spaced = await load([row('r1', 'A'), row(' r1\u00a0', 'B'), row('"r1 "', 'C'), row('r2', 'D')]);
  assert.equal(spaced.rejects.map((r) => [r.line, r.showId]), [[3, 'r1'], [4, 'r1']]);
  assert.match(spaced.rejects[0].reason, /show_id "r1" already appears at line 2/);
  assert.is(spaced.loaded, 2);
  const quoted = await load([row('"a""b"', 'A'), row('a"b', 'B')]);
  assert.equal(quoted.rejects.map((r) => r.line), [3]);
});

test('defects load cleanly: trimmed names, lists without empty items or repeats', async () => {
  await loadTitles(t.db, fx('defects.csv'));
  const d1 = await t.db.one(`SELECT t.title, t.rating, t.duration_minutes, t.date_added,
      ARRAY(SELECT p.name FROM title_cast x JOIN people p ON p.id = x.person_id WHERE x.title_id = t.id ORDER BY x.ord) AS cast_names,
      ARRAY(SELECT c.name FROM title_countries x JOIN countries c ON c.id = x.country_id WHERE x.title_id = t.id) AS countries,
      ARRAY(SELECT g.name FROM title_genres x JOIN genres g ON g.id = x.genre_id WHERE x.title_id = t.id ORDER BY 1) AS genres
    FROM titles t WHERE show_id = 'd1'`);
  assert.equal(d1, { title: 'Padded Title', rating: null, duration_minutes: 74, date_added: '2021-09-01',
    cast_names: ['Ann One', 'Bob Two'], countries: ['France'], genres: ['Comedies', 'Dramas'] });
  const d2 = await t.db.one(`SELECT type, duration_minutes FROM titles WHERE show_id = 'd2'`);
  assert.equal(d2, { type: 'Movie', duration_minutes: 95 });
  const d3 = await t.db.one(`SELECT seasons, description FROM titles WHERE show_id = 'd3'`);
  assert.equal(d3, { seasons: 1, description: 'A "bare quote" in an unquoted field.' });
  assert.not.ok(await t.db.one(`SELECT 1 FROM titles WHERE show_id IN ('d4', 'd5', 'd6')`));
});

test('upsert: changed genres and cast order update; --replace removes what the file lacks, keeps watched titles', async () => {
  // d1, d2, d3, d7 came from defects.csv; s1193 has viewing history
  const u = await t.db.one(`INSERT INTO users (email, display_name) VALUES ('viewer@example.com', 'Viewer') RETURNING id`);
  await t.db.query(`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched)
    SELECT $1, id, now(), 60 FROM titles WHERE show_id = 's1193'`, [u!.id]);
  const s = await loadTitles(t.db, fx('updated.csv'), { replace: true });
  assert.equal([s.inserted, s.updated, s.unchanged, s.removed], [1, 2, 9, 4]);
  assert.equal(s.keptReferenced, ['s1193']);
  const shows = (await t.db.query(`SELECT show_id FROM titles ORDER BY show_id`)).map((r) => r.show_id);
  assert.not.ok(shows.includes('d1'));
  assert.ok(shows.includes('s1193') && shows.includes('n1'));
  const s2 = await t.db.one(`SELECT ARRAY(SELECT g.name FROM title_genres x JOIN genres g ON g.id = x.genre_id WHERE x.title_id = t.id ORDER BY 1) AS g
    FROM titles t WHERE show_id = 's2'`);
  assert.equal(s2!.g, ['Crime TV Shows', 'TV Dramas']);
  const s3 = await t.db.one(`SELECT p.name FROM title_cast x JOIN people p ON p.id = x.person_id JOIN titles t ON t.id = x.title_id
    WHERE t.show_id = 's3' AND x.ord = 0`);
  assert.is(s3!.name, 'Bakary Diombera', 'the last listed cast member is now first');
  const again = await loadTitles(t.db, fx('updated.csv'), { replace: true });
  assert.equal([again.inserted, again.updated, again.unchanged, again.removed], [0, 0, 12, 0]);
  assert.equal(again.keptReferenced, ['s1193']);
});

test('--replace keeps a title whose row in the file was rejected', async () => {
  const text = fs.readFileSync(fx('updated.csv'), 'utf8').replace('"September 25, 2021"', '"Septober 25, 2021"');
  const s = await loadTitles(t.db, { name: 'edited.csv', stream: Readable.from([Buffer.from(text)]) }, { replace: true });
  assert.equal(s.rejects.map((r) => r.showId), ['s1']);
  assert.equal(s.keptRejected, ['s1']);
  assert.is(s.removed, 0);
  assert.ok(await t.db.one(`SELECT 1 FROM titles WHERE show_id = 's1'`));
});

test('the 2019 edition loads, and the 2021 file then updates the titles it renamed', async () => {
  const s = await loadTitles(t.db, fx('edition-2019.csv'));
  assert.equal([s.inserted, s.updated, s.rejects.length], [2, 3, 0]); // s4, s5 are new; s1-s3 had other titles
  const s1 = await t.db.one(`SELECT title, type, seasons FROM titles WHERE show_id = 's1'`);
  assert.equal(s1, { title: '3%', type: 'TV Show', seasons: 4 });
  const back = await loadTitles(t.db, fx('updated.csv'));
  assert.is(back.updated, 3);
  assert.is((await t.db.one(`SELECT title FROM titles WHERE show_id = 's1'`))!.title, 'Dick Johnson Is Dead');
});

// ── bad input: refused, named, nothing written ─────────────────────────────────────────────────────────────────
test('a bulk load keeps every foreign key: skipped triggers verified by range, or (a role that may not skip them) keys re-validated', async () => {
  const keys = `SELECT conname, oid::int8 AS oid, convalidated FROM pg_constraint
    WHERE contype = 'f' AND conrelid::regclass::text LIKE 'title\\_%' ORDER BY conname`;
  // the base, then every description edited: all titles updated, their links rewritten, every name already there
  const edited = fs.readFileSync(fx('base.csv'), 'utf8').replace(/"\n/g, ' (edited)"\n');
  const sources = () => [fx('base.csv'), { name: 'edited.csv', stream: Readable.from([Buffer.from(edited)]) }];
  const load = async (db: Db) => {
    const out: { kept: boolean; snap: string; updated: number }[] = [];
    for (const source of sources()) {
      const before = await db.query<{ oid: string }>(keys);
      const s = await loadTitles(db, source, { bulkLinkRows: 1 });
      const after = await db.query<{ conname: string; oid: string; convalidated: boolean }>(keys);
      assert.is(after.length, 8);
      assert.ok(after.every((k) => k.convalidated));
      out.push({ kept: after.every((k, i) => k.oid === before[i].oid), snap: await snapshotOf(db), updated: s.updated });
    }
    return out;
  };
  const su = await createDatabase({ label: 'etl_bulk_su' });
  const plain = await createDatabase({ label: 'etl_bulk_plain' });
  const rowByRow = await createDatabase({ label: 'etl_bulk_rows' });
  const role = `mqt_etl_${randomBytes(4).toString('hex')}`;
  let asPlain: Db | undefined;
  try {
    const bySuperuser = await load(su.db);
    assert.ok(bySuperuser.every((r) => r.kept), 'the superuser path keeps the constraints (triggers skipped, keys verified in bulk)');
    assert.ok(bySuperuser[1].updated >= 10, `${bySuperuser[1].updated} titles updated by the edited file`);
    // an owner without superuser may drop and re-add its keys but not set session_replication_role
    await plain.db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'x' NOSUPERUSER`);
    for (const table of ['titles', 'genres', 'countries', 'people', 'title_genres', 'title_countries', 'title_cast', 'title_directors']) {
      await plain.db.query(`ALTER TABLE ${table} OWNER TO ${role}`);
    }
    await plain.db.query(`GRANT SELECT ON watch_events TO ${role}`);
    await plain.db.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
    const url = new URL(plain.url);
    url.username = role;
    url.password = 'x';
    asPlain = createDb(url.toString(), { max: 2 });
    const byOwner = await load(asPlain);
    assert.ok(byOwner.every((r) => !r.kept), 'the owner path drops the keys and adds them again');
    assert.equal(byOwner.map((r) => r.snap), bySuperuser.map((r) => r.snap));
    // and both agree with the row-by-row path
    for (const source of sources()) await loadTitles(rowByRow.db, source);
    assert.is(await snapshotOf(rowByRow.db), bySuperuser[1].snap);
  } finally {
    await asPlain?.close();
    await su.drop();
    await plain.drop();
    await rowByRow.drop();
    await withConnection(serverUrl(), (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
  }
});

test('a defect is counted on every row it is in, not only where its value is first parsed', async () => {
  const header = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description';
  const rows = ['a1, Movie,A,,,," March 1, 2020",2020,PG,90 mins,Dramas,x', 'a2, Movie,B,,,," March 1, 2020",2020,PG,90 mins,Dramas,x',
    'a3,movie,C,,,,,2020,PG,1 Seasons,Dramas,x', 'a4,movie,D,,,,,2020,PG,1 Seasons,Dramas,x'];
  const s = await loadTitles(t.db, { name: 'again.csv', stream: Readable.from([Buffer.from([header, ...rows].join('\n') + '\n')]) }, { dryRun: true });
  assert.equal(s.rejects.map((r) => [r.line, r.reason]), [[4, 'duration "1 Seasons" counts seasons but the type is Movie'],
    [5, 'duration "1 Seasons" counts seasons but the type is Movie']]);
  assert.equal(s.defects, { whitespace_trimmed: 4, duration_spelling: 2, type_spelling: 2 });
});


test('a stray quote in a parsed column is part of its value; list items lose edge line breaks like other blanks', async () => {
  const header = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description';
  const rows = ['q1,Movie,A,,"Ann One, Bob Two\n",,,2020,TV-MA",90 min,Dramas,x', 'q2,Movie,B,,,,,9",PG,90 min,Dramas,x',
    'q3,Movie",C,,,,,2020,PG,90 min,Dramas,x'];
  for (const listWorkerBytes of [Infinity, 0]) {
    const s = await loadTitles(t.db, { name: 'stray.csv', stream: Readable.from([Buffer.from([header, ...rows].join('\n') + '\n')]) }, { listWorkerBytes });
    assert.equal(s.rejects.map((r) => [r.line, r.reason]), [[4, 'release_year "9\\"" is not a year between 1900 and 2100'],
      [5, 'type "Movie\\"" is neither "Movie" nor "TV Show"']]);
    assert.equal(await t.db.one(`SELECT t.rating, ARRAY(SELECT p.name FROM title_cast x JOIN people p ON p.id = x.person_id
        WHERE x.title_id = t.id ORDER BY x.ord) AS cast_names FROM titles t WHERE show_id = 'q1'`),
      { rating: 'TV-MA"', cast_names: ['Ann One', 'Bob Two'] });
    await t.db.query(`DELETE FROM titles WHERE show_id = 'q1'`);
  }
});

test('lists split on the worker thread (ring of shared slots, or a batch bigger than a slot) load what the inline split loads', async () => {
  // 3 copies of the real file with fresh show_ids (~10 MB: more than the ring's slots hold at once), plus the defects
  const [header, ...rows] = fs.readFileSync(REAL, 'utf8').replace(/\n$/, '').split('\n');
  const defects = fs.readFileSync(fx('defects.csv'), 'utf8').replace(/\n$/, '').split('\n').slice(1).map((r) => r.replace(/^"?d/, 'z'));
  const body = [0, 1, 2].map((k) => rows.join('\n').replace(/^s(\d+),/gm, `w${k}-$1,`)).join('\n');
  const bytes = Buffer.from(`${header}\n${body}\n${defects.join('\n')}\n`);
  const file = path.join(os.tmpdir(), `marquee-lists-${process.pid}.csv`);
  fs.writeFileSync(file, bytes);
  const chunks = (size: number) => Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
  const runs: Record<string, string> = {};
  try {
    for (const [name, input, opts] of [
      ['inline', file, {}],
      ['worker, 64 kB chunks', { name: file, stream: chunks(65536) }, {}],
      ['worker, one 10 MB chunk', { name: file, stream: chunks(bytes.length) }, {}],
      ['worker, forced for a file', file, { listWorkerBytes: 0 }],
    ] as const) {
      await t.db.query('TRUNCATE titles, genres, countries, people RESTART IDENTITY CASCADE');
      const s: Partial<LoadSummary> = await loadTitles(t.db, input, opts);
      assert.is(s.inserted, 3 * 8807 + 4, name);
      assert.ok(s.defects!.list_empty_items! > 0, name);
      delete s.timings;
      delete s.container;
      runs[name] = JSON.stringify(s) + JSON.stringify(await t.db.one(`SELECT
        (SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) FROM (SELECT show_id, type, title, release_year, rating,
          duration_minutes, seasons, date_added, description FROM titles) x) AS titles,
        (SELECT md5(string_agg(t.show_id || '/' || n.name, '|' ORDER BY t.show_id, n.name)) FROM title_genres x
          JOIN titles t ON t.id = x.title_id JOIN genres n ON n.id = x.genre_id) AS genres,
        (SELECT md5(string_agg(t.show_id || '/' || n.name, '|' ORDER BY t.show_id, n.name)) FROM title_countries x
          JOIN titles t ON t.id = x.title_id JOIN countries n ON n.id = x.country_id) AS countries,
        (SELECT md5(string_agg(t.show_id || '/' || n.name || '/' || x.ord, '|' ORDER BY t.show_id, x.ord)) FROM title_cast x
          JOIN titles t ON t.id = x.title_id JOIN people n ON n.id = x.person_id) AS cast_names,
        (SELECT md5(string_agg(t.show_id || '/' || n.name || '/' || x.ord, '|' ORDER BY t.show_id, x.ord)) FROM title_directors x
          JOIN titles t ON t.id = x.title_id JOIN people n ON n.id = x.person_id) AS directors`));
    }
  } finally {
    fs.rmSync(file, { force: true });
    // the catalog the other tests expect
    await t.db.query('TRUNCATE titles, genres, countries, people RESTART IDENTITY CASCADE');
    await loadTitles(t.db, fx('base.csv'));
  }
  for (const name of Object.keys(runs)) assert.is(runs[name], runs.inline, name);
});
test('an unterminated quote is refused with its line', async () => {
  await refused(fx('unterminated-quote.csv'), /:5: unbalanced quotes/, 5);
  const eof = 'show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description\n' +
    's1,Movie,"Open at the end,,,,,2001,R,90 min,Dramas,Text\n';
  await refused({ name: 'eof.csv', stream: Readable.from([Buffer.from(eof)]) }, /^eof\.csv:2: a quote opened here is never closed/, 2);
});

test('a wrong column count is refused with its line', async () => {
  await refused(fx('wrong-columns.csv'), /:5: expected 12 columns, found 7/, 5);
});

test('binary garbage, an empty file, a header-only file and another dataset are refused', async () => {
  await refused(fx('binary.csv'), /binary data \(a NUL byte\)/, 3);
  await refused(fx('empty.csv'), /: the file is empty$/, undefined);
  await refused(fx('header-only.csv'), /: the file has a header but no data rows$/, undefined);
  await refused(fx('not-dataset.csv'), /:1: not the Netflix titles dataset: the header lacks show_id, type, title/, 1);
  await refused(fx('does-not-exist.csv'), /: no such file$/, undefined);
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('show_id,type\n', 'utf16le')]);
  await refused({ name: 'utf16.csv', stream: Readable.from([utf16]) }, /UTF-16/, 1);
});

test('too many rejected rows refuse the whole file', async () => {
  await refused(fx('defects.csv'), /more than 2 rows rejected/, 9, { maxRejects: 2 });
});

test('a failure mid-stream, after rows reached COPY, leaves no new row visible', async () => {
  const real = fs.readFileSync(REAL, 'utf8').split('\n');
  // ~1 MB of good rows with fresh show_ids (several COPY chunks), then a broken one
  const good = real.slice(1, 3001).join('\n').replace(/^s(\d+),/gm, 'mid$1,');
  const lines = good.split('\n').length;
  const text = `${real[0]}\n${good}\nbroken,Movie,"never closed\n`;
  const before = await counts();
  const e = await refused({ name: 'mid.csv', stream: Readable.from([Buffer.from(text)]) }, /never closed/, lines + 2);
  assert.ok(e.line! > 3000);
  assert.equal(await counts(), before);
  // and a source that fails while streaming (disk error, broken pipe)
  let sent = 0;
  const failing = new Readable({
    read() {
      if (sent > 600_000) { this.destroy(new Error('EIO: simulated read error')); return; }
      const chunk = Buffer.from(text.slice(sent, sent + 65536));
      sent += 65536;
      this.push(chunk);
    },
  });
  try {
    await loadTitles(t.db, { name: 'failing', stream: failing });
    assert.unreachable('a failing source must fail the load');
  } catch (err: any) {
    assert.match(err.message, /EIO: simulated read error/);
  }
  assert.equal(await counts(), before);
  assert.not.ok(await t.db.one(`SELECT 1 FROM titles WHERE show_id LIKE 'mid%'`));
});

test('progress is reported while reading and before normalizing', async () => {
  const phases = new Set<string>();
  await loadTitles(t.db, fx('base.csv'), { onProgress: (p) => phases.add(p.phase), progressIntervalMs: 1, dryRun: true });
  assert.ok(phases.has('normalizing'));
});

// ── the CLI: arguments, output, exit status ────────────────────────────────────────────────────────────────────
function cli(args: string[], input?: Buffer) {
  return spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'etl/load-titles.ts'), ...args],
    { cwd: root, env: { ...process.env, DATABASE_URL: t.url }, input, encoding: 'utf8', timeout: 60_000 });
}

test('CLI: --help, usage errors, a refused file (exit 1, nothing written), a load with --rejects', async () => {
  const help = cli(['--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /Usage: npm run etl -- \[options\] <file \| ->/);
  assert.match(help.stdout, /--replace/);
  assert.is(cli([]).status, 2);
  assert.is(cli(['--encoding', 'ebcdic', fx('base.csv')]).status, 2);

  const before = await snapshot();
  const bad = cli(['--quiet', fx('wrong-columns.csv')]);
  assert.is(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /wrong-columns\.csv:5: expected 12 columns, found 7/);
  assert.match(bad.stderr, /nothing was written/);
  assert.is(await snapshot(), before);

  const rejects = path.join(os.tmpdir(), `etl-rejects-${process.pid}.csv`);
  try {
    const ok = cli(['--dry-run', '--rejects', rejects, fx('defects.csv')]);
    assert.is(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /4 titles checked \(dry run: nothing was written\) from 9 rows/);
    assert.match(ok.stdout, /line 6 \(d4\): release_year "19xx"/);
    assert.match(ok.stderr, /normalizing/, 'plain progress lines on a non-TTY stderr');
    const lines = fs.readFileSync(rejects, 'utf8').trim().split('\n');
    assert.is(lines[0], 'line,show_id,reason,record');
    assert.is(lines.length, 6);
    assert.match(lines[1], /^6,d4,"release_year ""19xx"" is not a year/);
    assert.is(await snapshot(), before);

    const piped = cli(['--quiet', '-'], fs.readFileSync(fx('base.csv.gz')));
    assert.is(piped.status, 0, piped.stderr);
    assert.match(piped.stdout, /^stdin: 12 titles loaded/);
  } finally {
    fs.rmSync(rejects, { force: true });
  }
});

test.run();
