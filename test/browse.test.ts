// The subscriber-facing catalog over the real titles file: typo-tolerant search ranked with the exact title first,
// filters and pages, 400s naming the field, canonical URLs, title pages with "More like this", posters that are
// deterministic, cacheable and accessible, and "Popular now" / "Continue watching" from watch_events.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from '../etl/titles/demo-step.ts';
import { posterSvg } from '../server/browse/poster.ts';
import { HtmlValidate } from 'html-validate';
import { waitFor } from './helpers/sync.ts';
import zlib from 'node:zlib';

const t = useDatabase(test);
let app: ReturnType<typeof createApp>;
const NOW = new Date('2026-11-20T12:00:00Z');

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  app = createApp({ db: t.db, log: () => {}, now: () => NOW });
});

const idOf = async (title: string) => (await t.db.one<{ id: number }>(sql`SELECT id FROM titles WHERE title = ${title}`))!.id;
const get = async (path: string, cookie = '') => {
  const res = await app.request(path, { headers: cookie ? { Cookie: cookie } : {} });
  return { res, body: await res.text() };
};
/** Title ids of the result cards, in page order. */
const cardIds = (body: string) => [...body.matchAll(/<li class="title-card"><a href="\/titles\/(\d+)"/g)].map((m) => Number(m[1]));

test('search tolerates typos and ranks the exact title first', async () => {
  const st = await idOf('Stranger Things');
  for (const q of ['stranger thigns', 'Stranger Things', 'strnger things', 'STRANGER THINGS']) {
    const { res, body } = await get(`/browse?q=${encodeURIComponent(q).replace(/%20/g, '+')}`);
    assert.is(res.status, 200, q);
    assert.is(cardIds(body)[0], st, `"${q}" finds Stranger Things first`);
  }
  // accents folded both ways
  const amelie = await t.db.one<{ id: number; title: string }>(`SELECT id, title FROM titles WHERE title ILIKE 'Am_lie%' LIMIT 1`);
  if (amelie) assert.ok(cardIds((await get('/browse?q=amelie')).body).includes(amelie.id), 'accent-insensitive');
});

test('search covers cast and directors, with typos', async () => {
  const scorsese = await t.db.query<{ title_id: number }>(`SELECT td.title_id FROM title_directors td JOIN people p ON p.id = td.person_id WHERE p.name = 'Martin Scorsese'`);
  assert.ok(scorsese.length >= 3);
  const ids = cardIds((await get('/browse?q=martin+scorsesee')).body);
  for (const r of scorsese.slice(0, 3)) assert.ok(ids.includes(r.title_id), `director's title ${r.title_id} found`);
  const cast = await t.db.query<{ title_id: number }>(`SELECT tc.title_id FROM title_cast tc JOIN people p ON p.id = tc.person_id WHERE p.name = 'Shah Rukh Khan'`);
  const found = cardIds((await get('/browse?q=shahrukh+khan')).body);
  assert.ok(cast.some((r) => found.includes(r.title_id)), 'cast member found despite the missing space');
  // a two-letter query: prefix match, no error
  assert.is((await get('/browse?q=Oz')).res.status, 200);
});

test('filters combine with search and with each other; pages move through the results', async () => {
  const { body } = await get('/browse?type=show&genre=Crime+TV+Shows&country=United+States');
  const expected = await t.db.one<{ n: number }>(`SELECT count(*) AS n FROM titles t WHERE t.type = 'TV Show'
    AND EXISTS (SELECT 1 FROM title_genres tg JOIN genres g ON g.id = tg.genre_id WHERE tg.title_id = t.id AND g.name = 'Crime TV Shows')
    AND EXISTS (SELECT 1 FROM title_countries tc JOIN countries c ON c.id = tc.country_id WHERE tc.title_id = t.id AND c.name = 'United States')`);
  assert.ok(expected!.n > 24, 'more than one page');
  assert.match(body, new RegExp(`${expected!.n} titles`));
  const page1 = cardIds(body);
  assert.is(page1.length, 24);
  const page2 = cardIds((await get('/browse?type=show&genre=Crime+TV+Shows&country=United+States&page=2')).body);
  assert.ok(page2.length > 0 && page2.every((id) => !page1.includes(id)), 'page 2 holds other titles');
  assert.match(body, /href="\/browse\?type=show&amp;genre=Crime\+TV\+Shows&amp;country=United\+States&amp;page=2"/);
  const all = await t.db.query<{ id: number }>(`SELECT t.id FROM titles t WHERE t.type = 'TV Show'
    AND EXISTS (SELECT 1 FROM title_genres tg JOIN genres g ON g.id = tg.genre_id WHERE tg.title_id = t.id AND g.name = 'Crime TV Shows')
    AND EXISTS (SELECT 1 FROM title_countries tc JOIN countries c ON c.id = tc.country_id WHERE tc.title_id = t.id AND c.name = 'United States')`);
  const allowed = new Set(all.map((r) => r.id));
  assert.ok([...page1, ...page2].every((id) => allowed.has(id)), 'every card matches the filters');

  const year = cardIds((await get('/browse?type=movie&rating=TV-MA&year=2019')).body);
  const check = await t.db.query<{ ok: boolean }>(sql`SELECT (release_year = 2019 AND rating = 'TV-MA' AND type = 'Movie') AS ok FROM titles WHERE id = ANY(${year}::bigint[])`);
  assert.ok(year.length > 0, 'some 2019 TV-MA movies');
  assert.ok(check.every((r) => r.ok), JSON.stringify(check));
  const search = await get('/browse?q=love&type=movie');
  const ids = cardIds(search.body);
  const types = await t.db.query<{ type: string }>(sql`SELECT DISTINCT type FROM titles WHERE id = ANY(${ids}::bigint[])`);
  assert.equal(types.map((r) => r.type), ['Movie']);
  // past the last page: 200, says so
  const far = await get('/browse?type=show&genre=Crime+TV+Shows&page=400');
  assert.is(far.res.status, 200);
  assert.match(far.body, /past the last page/);
});

test('bad parameters answer 400 naming the field; empty fields redirect to the canonical URL', async () => {
  for (const [url, field] of [['/browse?type=film', 'type'], ['/browse?genre=Nope', 'genre'], ['/browse?country=Atlantis', 'country'],
    ['/browse?rating=XX', 'rating'], ['/browse?year=19x9', 'year'], ['/browse?year=1800', 'year'], ['/browse?page=0', 'page'],
    ['/browse?page=abc', 'page'], [`/browse?q=${'x'.repeat(101)}`, 'q'], ['/browse?type=movie&type=show', 'type']] as const) {
    const { res, body } = await get(url);
    assert.is(res.status, 400, url);
    assert.match(body, new RegExp(`<b>${field}</b>`), `${url} names ${field}`);
  }
  const r = await app.request('/browse?q=ozark&type=&genre=&country=&rating=&year=&page=1');
  assert.is(r.status, 302);
  assert.is(r.headers.get('location'), '/browse?q=ozark');
  const r2 = await app.request('/browse?utm_source=newsletter&q=ozark');
  assert.is(r2.headers.get('location'), '/browse?q=ozark', 'unknown keys are dropped');
  assert.is((await app.request('/titles/abc')).status, 404);
  assert.is((await app.request('/titles/999999999')).status, 404);
});

test('title page: every field, links to filters, More like this sharing genres or people', async () => {
  const id = await idOf('Stranger Things');
  const { res, body } = await get(`/titles/${id}`);
  assert.is(res.status, 200);
  for (const s of ['<h1>Stranger Things</h1>', 'TV-14', 'Winona Ryder', 'United States', 'TV Horror',
    'More like this', `/titles/${id}/poster.svg`, 'Sign in to play', '/plans']) assert.ok(body.includes(s), s);
  assert.match(body, /href="\/browse\?genre=TV\+Horror"/);
  const similar = cardIds(body.slice(body.indexOf('More like this')));
  assert.ok(similar.length >= 6 && !similar.includes(id));
  const shared = await t.db.query<{ n: number }>(sql`SELECT count(*) AS n FROM titles o WHERE o.id = ANY(${similar}::bigint[]) AND (
    EXISTS (SELECT 1 FROM title_genres a JOIN title_genres b USING (genre_id) WHERE a.title_id = ${id} AND b.title_id = o.id)
    OR EXISTS (SELECT 1 FROM title_cast a JOIN title_cast b USING (person_id) WHERE a.title_id = ${id} AND b.title_id = o.id))`);
  assert.is(shared[0].n, similar.length, 'every similar title shares a genre or a cast member');
});

test('poster: deterministic SVG, cacheable (ETag, Cache-Control, 304), accessible (title, role, label)', async () => {
  const id = await idOf('Stranger Things');
  const a = await app.request(`/titles/${id}/poster.svg`);
  const b = await app.request(`/titles/${id}/poster.svg`);
  const svg = await a.text();
  assert.is(a.status, 200);
  assert.match(a.headers.get('content-type') ?? '', /^image\/svg\+xml/);
  assert.is(svg, await b.text(), 'same bytes every time');
  assert.match(a.headers.get('cache-control') ?? '', /public, max-age=\d+/);
  const etag = a.headers.get('etag')!;
  assert.ok(etag && etag === b.headers.get('etag'));
  const year = (await t.db.one<{ y: number }>(sql`SELECT release_year AS y FROM titles WHERE id = ${id}`))!.y;
  assert.match(svg, new RegExp(`<svg [^>]*role="img"[^>]*aria-label="Stranger Things \\(${year}\\)"`));
  assert.match(svg, new RegExp(`<title>Stranger Things \\(${year}\\)</title>`));
  assert.match(svg, /<tspan[^>]*>Stranger Things<\/tspan>|STRANGER/);
  const again = await app.request(`/titles/${id}/poster.svg`, { headers: { 'If-None-Match': etag } });
  assert.is(again.status, 304);
  // different titles look different; a title is escaped as text
  const other = await (await app.request(`/titles/${await idOf('Ozark')}/poster.svg`)).text();
  assert.is.not(other, svg);
  const odd = posterSvg({ id: 1, title: 'A <b>"quoted"</b> & title', type: 'Movie', releaseYear: null, genres: ['Dramas'] });
  assert.not.match(odd, /<b>/);
  assert.match(odd, /aria-label="A &#60;b&#62;&#34;quoted&#34;&#60;\/b&#62; &#38; title"/);
  assert.is(posterSvg({ id: 1, title: 'X', type: 'Movie', releaseYear: 2000, genres: ['Comedies'] }),
    posterSvg({ id: 1, title: 'X', type: 'Movie', releaseYear: 2000, genres: ['Comedies'] }));
  assert.is((await app.request('/titles/999999999/poster.svg')).status, 404);
});

test('/browse shelves: Popular now from the last 30 days of watch_events, New on Marquee, genres; Continue watching for the user', async () => {
  const viewer = await createUser(t.db, { role: 'subscriber' });
  const [ozark, narcos, st] = [await idOf('Ozark'), await idOf('Narcos'), await idOf('Stranger Things')];
  // Ozark watched most in the window, Narcos next; Stranger Things a lot but 40 days ago (outside the window)
  const rows: [number, number, string][] = [[ozark, 5, '2026-11-15'], [narcos, 3, '2026-11-10'], [st, 9, '2026-10-05']];
  for (const [title, n, day] of rows) {
    for (let i = 0; i < n; i++) {
      await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed) VALUES (${viewer.id}, ${title}, ${day}::timestamptz + ${i} * interval '1 minute', 600, true)`);
    }
  }
  // a started, unfinished viewing of another title
  const started = await idOf('Breaking Bad');
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed) VALUES (${viewer.id}, ${started}, '2026-11-19', 1200, false)`);
  const fresh = createApp({ db: t.db, log: () => {}, now: () => NOW });
  const anon = await (await fresh.request('/browse')).text();
  const popular = cardIds(anon.slice(anon.indexOf('Popular now'), anon.indexOf('New on Marquee')));
  assert.equal(popular.slice(0, 2), [ozark, narcos]);
  assert.not.ok(popular.includes(st), 'views older than 30 days do not count');
  assert.not.match(anon, /Continue watching/);
  const newest = cardIds(anon.slice(anon.indexOf('New on Marquee')));
  const latest = await t.db.one<{ id: number }>(`SELECT id FROM titles WHERE date_added IS NOT NULL ORDER BY date_added DESC, id DESC LIMIT 1`);
  assert.is(newest[0], latest!.id);
  assert.match(anon, /href="\/browse\?genre=International\+Movies"/);

  const mine = await (await fresh.request('/browse', { headers: { Cookie: await sessionCookie(t.db, viewer.id) } })).text();
  const cont = cardIds(mine.slice(mine.indexOf('Continue watching'), mine.indexOf('Popular now')));
  assert.equal(cont, [started]);
  assert.match(mine, /<progress max="100" value="44"/); // a show plays a 45-minute episode: 1200 s of 2700
  // filtered lists put the popular titles first
  const crime = cardIds(await (await fresh.request('/browse?type=show&genre=Crime+TV+Shows')).text());
  assert.is(crime[0], ozark);
});

test('Continue watching is kept per user until the change feed says their viewing changed, in any process', async () => {
  const viewer = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, viewer.id);
  const [a, b, c] = [await idOf('Ozark'), await idOf('Narcos'), await idOf('Dark')];
  const watch = (title: number, day: string) => sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed)
    VALUES (${viewer.id}, ${title}, ${day}::timestamptz, 600, false)`;
  await t.db.query(watch(a, '2026-11-10'));
  const fresh = createApp({ db: t.db, log: () => {}, now: () => NOW });
  await waitFor('the change feed to be live', () => t.db.changes.token('watch_events') !== null);
  const shelf = async () => {
    const body = await (await fresh.request('/browse', { headers: { Cookie: cookie } })).text();
    return cardIds(body.slice(body.indexOf('Continue watching'), body.indexOf('Popular now')));
  };
  assert.equal(await shelf(), [a]);
  // a write that notifies nobody (triggers off) is not seen: the shelf comes from memory, not from a query
  await t.db.tx(async (q) => {
    await q.query(`SET LOCAL session_replication_role = replica`);
    await q.query(watch(b, '2026-11-12'));
  });
  assert.equal(await shelf(), [a], 'served from the cache');
  // an ordinary write (another process, as far as this app knows) notifies 'watch_events:<user>': the shelf follows
  await t.db.query(watch(c, '2026-11-14'));
  const after = await waitFor('the shelf to show the new viewing', async () => { const s = await shelf(); return s[0] === c && s; });
  assert.equal(after, [c, b, a]);
  // another user's viewing leaves this user's entry alone (it is keyed and notified per user)
  const other = await createUser(t.db, { role: 'subscriber' });
  const token = t.db.changes.token('watch_events', `watch_events:${viewer.id}`);
  const othersBefore = t.db.changes.token(`watch_events:${other.id}`);
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed) VALUES (${other.id}, ${a}, '2026-11-15', 60, false)`);
  await waitFor('the other user\'s notification', () => t.db.changes.token(`watch_events:${other.id}`) !== othersBefore);
  assert.is(t.db.changes.token('watch_events', `watch_events:${viewer.id}`), token);
});

test('/ sends a signed-in subscriber to /browse, staff to the dashboards', async () => {
  const sub = await createUser(t.db, { role: 'subscriber' });
  const res = await app.request('/', { headers: { Cookie: await sessionCookie(t.db, sub.id) } });
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/browse');
  const analyst = await createUser(t.db, { role: 'analyst' });
  assert.is((await app.request('/', { headers: { Cookie: await sessionCookie(t.db, analyst.id) } })).headers.get('location'), '/dashboards');
  // staff may browse too
  assert.is((await app.request('/browse', { headers: { Cookie: await sessionCookie(t.db, analyst.id) } })).status, 200);
});

test('an anonymous page is kept encoded per snapshot and theme: the same markup in each encoding, none of a user\'s', async () => {
  const fresh = createApp({ db: t.db, log: () => {}, now: () => NOW });
  const viewer = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, viewer.id);
  const { display_name: name } = (await t.db.one<{ display_name: string }>(sql`SELECT display_name FROM users WHERE id = ${viewer.id}`))!;
  for (const url of ['/browse', '/browse?q=stranger+thigns']) {
    const ask = (headers: Record<string, string> = {}) => fresh.request(url, { headers });
    // a signed-in view first: what it renders for the user must not become the anonymous page
    assert.match(await (await ask({ Cookie: cookie })).text(), name, `${url}: signed in`);
    const plain = await ask();
    const text = await plain.text();
    assert.is(plain.headers.get('content-encoding'), null, url);
    assert.match(plain.headers.get('vary') ?? '', /Accept-Encoding/, `${url}: Vary`);
    assert.not.match(text, name, `${url}: no user's name`);
    assert.match(text, /<html lang="en" data-theme="dark">/);
    assert.is(await (await ask()).text(), text, `${url}: kept`);
    for (const [enc, inflate] of [['br', zlib.brotliDecompressSync], ['gzip', zlib.gunzipSync]] as const) {
      const res = await ask({ 'Accept-Encoding': enc });
      assert.is(res.headers.get('content-encoding'), enc, `${url} ${enc}`);
      assert.match(res.headers.get('vary') ?? '', /Accept-Encoding/);
      const body = Buffer.from(await res.arrayBuffer());
      assert.ok(body.length < text.length / 3, `${url} ${enc}: ${body.length} bytes`);
      assert.is(inflate(body).toString('utf8'), text, `${url} ${enc}: same page`);
    }
    const light = await (await ask({ Cookie: 'mq_theme=light' })).text();
    assert.match(light, /<html lang="en" data-theme="light">/, `${url}: its own page per theme`);
    assert.is(light.replace('data-theme="light"', 'data-theme="dark"').replace(/aria-pressed="(true|false)"/g, ''), text.replace(/aria-pressed="(true|false)"/g, ''));
  }
  // a write to the catalog moves its generation: the next anonymous page is rendered from the catalog as it is now
  const newest = (await t.db.one<{ id: number; title: string }>(`SELECT id, title FROM titles WHERE date_added IS NOT NULL ORDER BY date_added DESC, id DESC LIMIT 1`))!;
  await waitFor('the change feed to be live', () => t.db.changes.token('catalog_state') !== null);
  await t.db.query(sql`UPDATE titles SET title = 'Quokka Nights in Pemba' WHERE id = ${newest.id}`);
  try {
    await waitFor('the renamed title on the page', async () => (await (await fresh.request('/browse')).text()).includes('alt="Quokka Nights in Pemba"'));
  } finally {
    await t.db.query(sql`UPDATE titles SET title = ${newest.title} WHERE id = ${newest.id}`);
  }
});

test('html-validate (recommended) finds nothing in the catalog pages\' markup, signed out and in', async () => {
  // the product's rules (.htmlvalidate.json): recommended, minus trailing whitespace of template literals
  const validator = new HtmlValidate({ extends: ['html-validate:recommended'], rules: {
    'no-trailing-whitespace': 'off', 'form-dup-name': ['error', { shared: ['radio', 'checkbox', 'button', 'reset', 'submit'] }] } });
  const viewer = await createUser(t.db, { role: 'subscriber' });
  const bare = await createUser(t.db, { role: 'subscriber' });
  await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES (${viewer.id}, 1, 'active', now(), now() + interval '1 month')`);
  const id = await idOf('Stranger Things');
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched) VALUES (${viewer.id}, ${id}, now(), 300)`);
  const signedIn = await sessionCookie(t.db, viewer.id);
  const problems: string[] = [];
  for (const [path, cookie, status] of [['/browse', '', 200], ['/browse', signedIn, 200], ['/browse?q=stranger+thigns', '', 200],
    ['/browse?type=show&genre=Crime+TV+Shows&page=2', signedIn, 200], [`/titles/${id}`, '', 200], [`/titles/${id}`, signedIn, 200],
    [`/titles/${id}`, await sessionCookie(t.db, bare.id), 200], [`/titles/${id}/play`, signedIn, 200],
    [`/titles/${id}/play`, await sessionCookie(t.db, bare.id), 403], ['/browse?genre=Nope', '', 400]] as const) {
    const { res, body } = await get(path, cookie);
    assert.is(res.status, status, path);
    // this feature's markup: the <main> of each page (the shared layout around it is the layout's own business)
    const main = body.slice(body.indexOf('<main'), body.lastIndexOf('</main>') + 7);
    const doc = `<!DOCTYPE html><html lang="en"><head><title>t</title></head><body>${main}</body></html>`;
    const report = await validator.validateString(doc, `${path}${cookie ? ' (signed in)' : ''}`);
    for (const r of report.results) for (const m of r.messages) problems.push(`${r.filePath}:${m.line}:${m.column} ${m.ruleId}: ${m.message}`);
  }
  assert.equal(problems, [], problems.join('\n'));
});

test.run();
