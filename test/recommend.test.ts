// Recommendations on the simulator's `--scale small` history (README "Recommendations and churn prediction
// (server/ml)"): the viewing follows genre affinities; the refresh fills the neighbour and cold-start tables; the
// rows a subscriber sees never hold a title they watched, finished or not, and say why; /browse and /titles/:id show
// them; the recommendation_quality report shows the latest evaluation, in which the recommender beats most-popular
// by a clear margin (two more seeds: test/recommend-seeds.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { refreshRecommendations, evaluateRecommendations, REC_PARAMS } from '../server/ml/recommend.ts';
import { personalRows, similarTitleIds } from '../server/ml/recommend-serve.ts';
import { genreAffinity } from '../server/ml/recommend-check.ts';
import { loadCatalog, runReport } from '../server/reports/engine.ts';
import { assertMargins } from './helpers/recommend.ts';

const t = useDatabase(test);
const simulate = (seed: number, reset: boolean) =>
  runSimulation(t.db, parseArgs(['--scale', 'small', '--seed', String(seed), '--quiet', ...(reset ? ['--reset'] : [])]));

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  await simulate(42, false);
});

test('the simulated viewing follows each customer\'s genres (share of later viewing in their early top genres ≫ catalog share)', async () => {
  const a = await genreAffinity(t.db);
  console.log(`genre affinity: ${a.users} customers, ${(100 * a.watchShare).toFixed(1)} % of later viewing in their top-3 genres, which hold ${(100 * a.catalogShare).toFixed(1)} % of the catalog (lift ${a.lift.toFixed(2)})`);
  assert.ok(a.users > 500, `${a.users} customers`);
  assert.ok(a.lift > 1.6, `lift ${a.lift}`);
});


let refreshed: { titles: number; users: number; ms: number };
test('the refresh fills the neighbour and cold-start tables', async () => {
  refreshed = await refreshRecommendations(t.db, { seed: 42 });
  const titles = await t.db.one<{ n: number }>(`SELECT count(*) AS n FROM titles`);
  assert.is(refreshed.titles, titles!.n, 'every title has neighbours (content at least)');
  const users = await t.db.one<{ n: number }>(`SELECT count(DISTINCT user_id) AS n FROM watch_events`);
  assert.is(refreshed.users, users!.n);
  const s = await t.db.one<{ rows: number; max_rank: number; self: number; cowatch: number }>(`
    SELECT count(*) AS rows, max(rank) AS max_rank, count(*) FILTER (WHERE similar_id = title_id) AS self,
           count(*) FILTER (WHERE cowatch_score > 0) AS cowatch FROM rec_title_similar`);
  assert.is(s!.max_rank, REC_PARAMS.neighbours);
  assert.is(s!.self, 0);
  assert.ok(s!.cowatch > s!.rows / 4, `co-watch feeds ${s!.cowatch} of ${s!.rows} neighbours`);
  const seg = await t.db.query<{ country: string; plan_code: string; n: number }>(`
    SELECT country, plan_code, count(*) AS n FROM rec_popular_segment GROUP BY 1, 2 ORDER BY 1, 2`);
  assert.ok(seg.some((x) => x.country === '' && x.plan_code === ''), 'the everyone segment');
  assert.ok(seg.some((x) => x.country !== '' && x.plan_code !== ''), 'country × plan segments');
  const run = await t.db.one<{ n: number }>(`SELECT count(*) AS n FROM rec_refreshes`);
  assert.is(run!.n, 1);
});

/** Subscribers with access and viewing history, most viewing first. */
const viewers = (limit: number) => t.db.query<{ user_id: number }>(sql`
  SELECT w.user_id FROM watch_events w JOIN subscriptions s ON s.user_id = w.user_id AND s.status IN ('active', 'past_due')
  GROUP BY w.user_id ORDER BY count(*) DESC, w.user_id LIMIT ${limit}`);

test('a subscriber\'s rows never hold a title they watched (finished or not), and each says why', async () => {
  const users = await viewers(60);
  assert.ok(users.length >= 60);
  let because = 0, picks = 0;
  for (const { user_id } of users) {
    const rows = await personalRows(t.db, user_id);
    const watched = await t.db.query<{ title_id: number; title: string; completed: boolean }>(sql`
      SELECT DISTINCT w.title_id, t.title, w.completed FROM watch_events w JOIN titles t ON t.id = w.title_id WHERE w.user_id = ${user_id}`);
    const seen = new Set(watched.map((w) => w.title_id));
    assert.ok(watched.some((w) => w.completed), 'the busiest viewers have finished titles');
    for (const r of rows) {
      assert.ok(r.titleIds.length > 0 && r.why.length > 0, r.name);
      for (const id of r.titleIds) assert.not.ok(seen.has(id), `user ${user_id}: ${r.name} offers watched title ${id}`);
      if (r.id === 'because') {
        because++;
        const anchor = r.name.replace(/^Because you watched /, '');
        assert.ok(watched.some((w) => w.title === anchor), `"${r.name}" names a title of the history`);
      }
      if (r.id === 'top-picks') {
        picks++;
        assert.is(r.name, 'Top picks for you');
        assert.match(r.why, /^Because you watched /);
      }
    }
    const ids = rows.flatMap((r) => r.titleIds);
    assert.is(new Set(ids).size, ids.length, 'no title twice on the page');
  }
  assert.is(because, users.length);
  assert.is(picks, users.length);
});

test('a title finished a minute ago leaves the rows at once', async () => {
  const [{ user_id }] = await viewers(1);
  const before = await personalRows(t.db, user_id);
  const top = before.find((r) => r.id === 'top-picks')!.titleIds[0];
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed)
    VALUES (${user_id}, ${top}, now() - interval '1 minute', 3000, true)`);
  const after = await personalRows(t.db, user_id);
  assert.not.ok(after.flatMap((r) => r.titleIds).includes(top));
  // and it is now the most recent title: the "Because you watched" row is about it when it has enough neighbours
  const name = (await t.db.one<{ title: string }>(sql`SELECT title FROM titles WHERE id = ${top}`))!.title;
  const neighbours = await similarTitleIds(t.db, top, REC_PARAMS.neighbours);
  if (neighbours.length >= 6) assert.is(after[0].name, `Because you watched ${name}`);
});

test('without viewing history: what is popular among customers of the same country and plan', async () => {
  const seg = (await t.db.one<{ country: string; plan_code: string; name: string }>(`
    SELECT r.country, r.plan_code, p.name FROM rec_popular_segment r JOIN plans p ON p.code = r.plan_code
    WHERE r.country <> '' AND r.rank = 1 ORDER BY r.segment_viewers DESC LIMIT 1`))!;
  const u = await createUser(t.db, { role: 'subscriber' });
  await t.db.query(sql`UPDATE users SET country = ${seg.country} WHERE id = ${u.id}`);
  await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES (${u.id}, (SELECT id FROM plans WHERE code = ${seg.plan_code}), 'active', now(), now() + interval '1 month')`);
  const rows = await personalRows(t.db, u.id);
  assert.is(rows.length, 1);
  assert.is(rows[0].name, `Popular with ${seg.name} subscribers in ${seg.country}`);
  const expected = await t.db.query<{ title_id: number }>(sql`
    SELECT title_id FROM rec_popular_segment WHERE country = ${seg.country} AND plan_code = ${seg.plan_code} ORDER BY rank LIMIT 18`);
  assert.equal(rows[0].titleIds, expected.map((r) => r.title_id));
  // a country with no segment of its own falls back to the plan's
  await t.db.query(sql`UPDATE users SET country = 'ZZ' WHERE id = ${u.id}`);
  assert.is((await personalRows(t.db, u.id))[0].name, `Popular with ${seg.name} subscribers`);
});

test('/browse shows the rows to a signed-in subscriber, not to visitors or accounts without access', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  const [{ user_id }] = await viewers(1);
  const rows = await personalRows(t.db, user_id);
  const page = await (await authedRequest(app, await sessionCookie(t.db, user_id), '/browse')).text();
  for (const r of rows) {
    const section = page.match(new RegExp(`<section class="shelf" aria-labelledby="shelf-${r.id}">([\\s\\S]*?)</section>`));
    assert.ok(section, `section ${r.id}`);
    assert.ok(section![1].includes(r.name.replace(/&/g, '&amp;').replace(/'/g, '&#39;').replace(/"/g, '&quot;')) || r.id !== 'top-picks', r.name);
    assert.match(section![1], 'class="shelf-why muted"');
    const shown = [...section![1].matchAll(/href="\/titles\/(\d+)"/g)].map((m) => Number(m[1]));
    assert.equal(shown, r.titleIds);
  }
  assert.match(page, 'Top picks for you');
  assert.match(page, 'Because you watched');
  const anon = await (await app.request('/browse')).text();
  assert.not.match(anon, 'Top picks for you');
  const noSub = await createUser(t.db, { role: 'subscriber' });
  const other = await (await authedRequest(app, await sessionCookie(t.db, noSub.id), '/browse')).text();
  assert.not.match(other, 'Top picks for you');
  assert.not.match(other, 'Popular with');
});

test('/titles/:id: More like this is the precomputed neighbours, less what the signed-in user finished', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  const [{ user_id }] = await viewers(1);
  const title = (await t.db.one<{ id: number }>(`SELECT title_id AS id FROM rec_title_similar GROUP BY 1 ORDER BY 1 LIMIT 1`))!.id;
  const neighbours = await similarTitleIds(t.db, title, 24);
  const shown = async (cookie: string) => {
    const res = await (cookie ? authedRequest(app, cookie, `/titles/${title}`) : app.request(`/titles/${title}`));
    const html = await res.text();
    const section = html.match(/aria-labelledby="shelf-similar">([\s\S]*?)<\/section>/)![1];
    return [...section.matchAll(/href="\/titles\/(\d+)"/g)].map((m) => Number(m[1]));
  };
  assert.equal(await shown(''), neighbours.slice(0, 12));
  await t.db.query(sql`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched, completed)
    VALUES (${user_id}, ${neighbours[0]}, now() - interval '2 minutes', 3000, true)`);
  assert.equal(await shown(await sessionCookie(t.db, user_id)), neighbours.slice(1, 13));
});

test('evaluation: stored and shown by the recommendation_quality report; the recommender beats most-popular', async () => {
  const e = await evaluateRecommendations(t.db, { seed: 42 });
  assertMargins(42, e);
  const report = (await runReport(t.db, loadCatalog(), 'recommendation_quality', new URLSearchParams(), { role: 'analyst', now: new Date(), cache: false })).rows as any[];
  assert.equal(report.map((r) => r.method), ['recommender', 'most_popular', 'random']);
  const { most_popular: mp, random: rnd } = e.baselines;
  assert.equal(report.map((r) => [r.hit_rate_at_10, r.ndcg_at_10, r.coverage]), [e, mp, rnd].map((m) => [m.hit_rate_at_10, m.ndcg_at_10, m.coverage]));
  assert.is(report[0].seed, 42);
  const evaluated = await t.db.one<{ n: number }>(sql`
    SELECT count(*) AS n FROM (SELECT user_id FROM watch_events GROUP BY 1 HAVING count(DISTINCT title_id) >= ${REC_PARAMS.heldOut + REC_PARAMS.minTrain}) x`);
  assert.is(report[0].users, evaluated!.n);
});

test.run();
