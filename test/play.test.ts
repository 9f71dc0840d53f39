// Playing: only accounts with a subscription in active or past_due may play (others are told why and sent to /plans);
// progress reports keep one watch_events row per viewing session, updated as it goes, completed at 90 % of the
// duration (a movie's running time, a show's 45-minute episode); a live write never changes a row of a closed month.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from '../etl/titles/demo-step.ts';

const t = useDatabase(test);
let now = new Date('2026-11-20T12:00:00Z');
let app: ReturnType<typeof createApp>;
let movie: { id: number; duration_minutes: number };
let show: number;

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  app = createApp({ db: t.db, log: () => {}, now: () => now });
  movie = (await t.db.one<{ id: number; duration_minutes: number }>(`SELECT id, duration_minutes FROM titles WHERE title = 'The Irishman'`))!;
  show = (await t.db.one<{ id: number }>(`SELECT id FROM titles WHERE title = 'Stranger Things'`))!.id;
});

async function subscriber(status: 'active' | 'past_due' | 'incomplete' | 'canceled' | null, role: 'subscriber' | 'admin' = 'subscriber') {
  const u = await createUser(t.db, { role });
  if (status) {
    await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end, ended_at, end_reason)
      VALUES (${u.id}, (SELECT id FROM plans WHERE code = 'standard'), ${status}, ${now}, ${now}::timestamptz + interval '1 month',
              ${status === 'canceled' ? now : null}, ${status === 'canceled' ? 'voluntary' : null})`);
  }
  return { ...u, cookie: await sessionCookie(t.db, u.id) };
}

const progress = (cookie: string, title: number, body: unknown) => authedRequest(app, cookie, `/api/play/${title}/progress`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});
const rows = (userId: number) => t.db.query(sql`SELECT id, title_id, started_at, seconds_watched, completed FROM watch_events WHERE user_id = ${userId} ORDER BY id`);

test('without an active or past_due subscription: refused with the reason and a link to /plans', async () => {
  for (const status of [null, 'incomplete', 'canceled'] as const) {
    const u = await subscriber(status);
    const pageRes = await app.request(`/titles/${movie.id}/play`, { headers: { Cookie: u.cookie } });
    const html = await pageRes.text();
    assert.is(pageRes.status, 403, `${status}: play page refused`);
    assert.match(html, /href="\/plans"/);
    assert.match(html, status === 'incomplete' ? /waiting for its first payment/ : /needs an active subscription/);
    const title = await (await app.request(`/titles/${movie.id}`, { headers: { Cookie: u.cookie } })).text();
    assert.match(title, /<button type="button" class="play" disabled aria-describedby="play-why">/);
    assert.match(title, /<a href="\/plans">Choose a plan<\/a>/);
    const api = await progress(u.cookie, movie.id, { position: 10 });
    assert.is(api.status, 403);
    assert.match((await api.json()).error.message, /\/plans/);
    assert.equal(await rows(u.id), [], 'nothing written');
  }
  // staff have no special right to play
  const admin = await subscriber(null, 'admin');
  assert.is((await progress(admin.cookie, movie.id, { position: 10 })).status, 403);
  // anonymous: the title page offers sign-in; the play page sends to /login; the API answers 401
  const anon = await (await app.request(`/titles/${movie.id}`)).text();
  assert.match(anon, /href="\/login\?next=%2Ftitles%2F\d+%2Fplay"/);
  const r = await app.request(`/titles/${movie.id}/play`);
  assert.is(r.status, 303);
  assert.match(r.headers.get('location') ?? '', /^\/login\?next=/);
  assert.is((await app.request(`/api/play/${movie.id}/progress`, { method: 'POST', headers: { Origin: 'http://localhost', 'Content-Type': 'application/json' }, body: '{"position":1}' })).status, 401);
});

test('active and past_due may play: the player page carries the duration and the resume point', async () => {
  for (const status of ['active', 'past_due'] as const) {
    const u = await subscriber(status);
    const res = await app.request(`/titles/${movie.id}/play`, { headers: { Cookie: u.cookie } });
    assert.is(res.status, 200, status);
    const html = await res.text();
    assert.match(html, new RegExp(`data-title-id="${movie.id}" data-duration="${movie.duration_minutes * 60}" data-start="0"`));
    assert.match(html, /<script type="module" src="\/static\/build\/player-[\w-]+\.js"><\/script>/);
    const title = await (await app.request(`/titles/${movie.id}`, { headers: { Cookie: u.cookie } })).text();
    assert.match(title, new RegExp(`href="/titles/${movie.id}/play">▶ Play`));
  }
  const u = await subscriber('active');
  const showPage = await (await app.request(`/titles/${show}/play`, { headers: { Cookie: u.cookie } })).text();
  assert.match(showPage, /data-duration="2700"/, 'a show plays one 45-minute episode');
});

test('progress: one row per viewing session, updated as it goes, completed at 90 %', async () => {
  const u = await subscriber('active');
  const duration = movie.duration_minutes * 60;
  const first = await progress(u.cookie, movie.id, { position: 0 });
  assert.is(first.status, 200);
  const a = await first.json();
  assert.equal({ ...a, session: 0 }, { session: 0, secondsWatched: 0, completed: false, duration });
  for (const position of [60, 600, 300 /* a seek back does not lower it */, 1800.7]) {
    const r = await progress(u.cookie, movie.id, { session: a.session, position });
    assert.is(r.status, 200);
    assert.is((await r.json()).session, a.session, 'same session');
  }
  let mine = await rows(u.id);
  assert.is(mine.length, 1, 'one row for the session');
  assert.equal({ seconds: mine[0].seconds_watched, completed: mine[0].completed, started: mine[0].started_at.toISOString() },
    { seconds: 1800, completed: false, started: now.toISOString() });
  // just under 90 %: not completed; at 90 %: completed
  const ninety = Math.ceil(duration * 0.9);
  assert.is((await (await progress(u.cookie, movie.id, { session: a.session, position: ninety - 1 })).json()).completed, false);
  assert.is((await (await progress(u.cookie, movie.id, { session: a.session, position: ninety })).json()).completed, true);
  mine = await rows(u.id);
  assert.is(mine.length, 1);
  assert.equal([mine[0].seconds_watched, mine[0].completed], [ninety, true]);

  // the title page now offers Play again (completed), the resume point is 0; a new session is a new row
  const b = await (await progress(u.cookie, movie.id, { position: 30 })).json();
  assert.is.not(b.session, a.session);
  assert.is((await rows(u.id)).length, 2);
  const player = await (await app.request(`/titles/${movie.id}/play`, { headers: { Cookie: u.cookie } })).text();
  assert.match(player, /data-start="30"/, 'resumes the unfinished session');
  // continue watching lists it
  const browse = await (await app.request('/browse', { headers: { Cookie: u.cookie } })).text();
  assert.match(browse, /Continue watching/);

  // another user's session id is not theirs to extend: a new row of their own
  const other = await subscriber('active');
  const c = await (await progress(other.cookie, movie.id, { session: a.session, position: 100 })).json();
  assert.is.not(c.session, a.session);
  assert.is((await rows(u.id)).length, 2, "the first user's rows are untouched");
  assert.is((await rows(u.id))[0].seconds_watched, ninety);
});

test('a session begun in a closed month (or long ago) is not extended: the report opens a new one now', async () => {
  const u = await subscriber('active');
  now = new Date('2026-11-30T23:50:00Z');
  const a = await (await progress(u.cookie, movie.id, { position: 100 })).json();
  now = new Date('2026-12-01T00:05:00Z');
  const b = await (await progress(u.cookie, movie.id, { session: a.session, position: 1000 })).json();
  assert.is.not(b.session, a.session);
  const mine = await rows(u.id);
  assert.equal(mine.map((r) => [r.started_at.toISOString(), r.seconds_watched]), [['2026-11-30T23:50:00.000Z', 100], ['2026-12-01T00:05:00.000Z', 1000]]);
  now = new Date('2026-12-01T13:00:00Z');
  const c = await (await progress(u.cookie, movie.id, { session: b.session, position: 1200 })).json();
  assert.is.not(c.session, b.session, 'older than 12 hours');
  now = new Date('2026-11-20T12:00:00Z');
});

test('bad progress reports answer 400 naming the field and write nothing', async () => {
  const u = await subscriber('active');
  const cases: [unknown, string][] = [
    [{ position: -1 }, 'position'], [{ position: 'ten' }, 'position'], [{}, 'position'], [{ position: 1e9 }, 'position'],
    [{ position: 5, session: 'x' }, 'session'], [{ position: 5, session: 1.5 }, 'session'], [{ position: 5, extra: 1 }, 'extra'],
    [[1, 2], 'body'],
  ];
  for (const [body, field] of cases) {
    const r = await progress(u.cookie, movie.id, body);
    assert.is(r.status, 400, JSON.stringify(body));
    assert.ok(field in ((await r.json()).error.fields ?? {}), `${JSON.stringify(body)} names ${field}`);
  }
  const notJson = await authedRequest(app, u.cookie, `/api/play/${movie.id}/progress`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"position":' });
  assert.is(notJson.status, 400);
  assert.is((await progress(u.cookie, 999999999, { position: 1 })).status, 404);
  assert.equal(await rows(u.id), []);
});

test.run();
