// The real dataset's known facts. The first-start demo step loads the bundled etl/data/netflix_titles.csv.gz (the
// same bytes, checked by SHA-256); the same file as a plain CSV (decompressed from it) is then loaded over it once: all unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { useDatabase } from './helpers/db.ts';
import { realTitlesCsv } from './helpers/dataset.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { titlesDemoStep, BUNDLED_TITLES } from '../etl/titles/demo-step.ts';
import { demoDataSteps } from '../server/demo-data.ts';

const t = useDatabase(test);
const REAL = realTitlesCsv();
const SHA256 = '2337d45a294b0711434a61a85c9504905b2fd1fbc0e2adc0d3cdc10f4b96cd16';

test('the bundled gzip is the real file, byte for byte', () => {
  const bytes = zlib.gunzipSync(fs.readFileSync(BUNDLED_TITLES));
  assert.is(createHash('sha256').update(bytes).digest('hex'), SHA256);
});

test('the titles demo step comes first and loads the bundled catalog once', async () => {
  assert.is(demoDataSteps[0], titlesDemoStep);
  assert.is(await titlesDemoStep.present(t.db), false);
  const lines: string[] = [];
  await titlesDemoStep.load(t.db, (l) => lines.push(l));
  assert.match(lines.join('\n'), /titles: 8807 inserted, 0 updated, 0 unchanged/);
  assert.is(await titlesDemoStep.present(t.db), true);
});

test("the real file's known facts", async () => {
  const f = await t.db.one(`SELECT count(*) AS titles, count(*) FILTER (WHERE type = 'Movie') AS movies,
      count(*) FILTER (WHERE type = 'TV Show') AS shows, count(*) FILTER (WHERE date_added IS NULL) AS no_date,
      min(date_added) AS first_added, max(date_added) AS last_added,
      (SELECT count(*) FROM genres) AS genres FROM titles`);
  assert.equal(f, { titles: 8807, movies: 6131, shows: 2676, no_date: 10, first_added: '2008-01-01', last_added: '2021-09-25', genres: 42 });
  // the three rows with the duration in the rating column: repaired
  const swaps = await t.db.query(`SELECT show_id, rating, duration_minutes FROM titles WHERE show_id IN ('s5542', 's5795', 's5814') ORDER BY show_id`);
  assert.equal(swaps, [
    { show_id: 's5542', rating: null, duration_minutes: 74 },
    { show_id: 's5795', rating: null, duration_minutes: 84 },
    { show_id: 's5814', rating: null, duration_minutes: 66 },
  ]);
  assert.not.ok(await t.db.one(`SELECT 1 FROM titles WHERE rating ~ 'min'`));
  // every movie has minutes and every show seasons, except the rows whose duration was missing
  const durations = await t.db.one(`SELECT count(*) FILTER (WHERE type = 'Movie' AND duration_minutes IS NULL) AS movies_without,
    count(*) FILTER (WHERE type = 'TV Show' AND seasons IS NULL) AS shows_without FROM titles`);
  assert.equal(durations, { movies_without: 0, shows_without: 0 });
  // lists: no empty names, no stray spaces
  const names = await t.db.one(`SELECT count(*) AS bad FROM (SELECT name FROM people UNION ALL SELECT name FROM countries
    UNION ALL SELECT name FROM genres) n WHERE name <> btrim(name) OR name = '' OR name LIKE '%,%'`);
  assert.is(names!.bad, 0);
  const s2 = await t.db.one(`SELECT count(*) AS n FROM title_cast x JOIN titles t ON t.id = x.title_id WHERE t.show_id = 's2'`);
  assert.is(s2!.n, 19);
});

test('loading the real CSV over it changes nothing: 8,807 unchanged', async () => {
  const links = async () => t.db.one(`SELECT (SELECT count(*) FROM title_cast) AS c, (SELECT count(*) FROM title_genres) AS g,
    (SELECT count(*) FROM title_countries) AS k, (SELECT count(*) FROM title_directors) AS d, (SELECT max(updated_at) FROM titles) AS u`);
  const before = await links();
  const s = await loadTitles(t.db, REAL);
  assert.equal([s.rows, s.inserted, s.updated, s.unchanged, s.removed], [8807, 0, 0, 8807, 0]);
  assert.equal(s.rejects, []);
  assert.is(s.defects.rating_holds_duration, 3);
  assert.is(s.defects.whitespace_trimmed, 89); // 88 dates with a leading space, one title ending in a no-break space
  assert.is(s.missing.date_added, 10);
  assert.is(s.encoding, 'UTF-8');
  assert.equal(s.dateFormats, { 'Month D, YYYY': 8797 });
  assert.equal(await links(), before);
});

test.run();
