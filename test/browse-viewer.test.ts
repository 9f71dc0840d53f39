// A signed-in title page reads the user's access and viewing once and keeps them (viewerOf, server/browse/play.ts)
// until the change feed says that user's subscriptions (migration 0021) or watch_events (0018) changed: served from
// memory while nothing changed, and a first payment, a cancel taking effect, a billing write in this process or a
// progress report shows on the next page.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from '../etl/titles/demo-step.ts';
import { openLive } from '../server/billing/store.ts';
import { waitFor } from './helpers/sync.ts';

const t = useDatabase(test);
const now = new Date('2026-11-20T12:00:00Z');
let app: ReturnType<typeof createApp>;
let movie: number;

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  app = createApp({ db: t.db, log: () => {}, now: () => now });
  movie = (await t.db.one<{ id: number }>(`SELECT id FROM titles WHERE title = 'The Irishman'`))!.id;
  await waitFor('the change feed to be live', () => t.db.changes.token('subscriptions') !== null);
});

const titlePage = async (cookie: string, id = movie) => (await app.request(`/titles/${id}`, { headers: { Cookie: cookie } })).text();
const canPlay = (html: string) => html.includes(`href="/titles/${movie}/play">▶`);
const insertSub = (userId: number, status: string) => sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
  VALUES (${userId}, (SELECT id FROM plans WHERE code = 'standard'), ${status}, ${now}, ${now}::timestamptz + interval '1 month')`;

test('access is kept per user until their subscriptions change, in any process', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.not.ok(canPlay(await titlePage(cookie)), 'no subscription: no Play');
  // a write that notifies nobody (triggers off) is not seen: the page comes from memory, not from a query
  await t.db.tx(async (q) => {
    await q.query(`SET LOCAL session_replication_role = replica`);
    await q.query(insertSub(u.id, 'active'));
  });
  assert.not.ok(canPlay(await titlePage(cookie)), 'served from the cache');
  // an ordinary write (another process, as far as this app knows) notifies 'subscriptions:<user>': the page follows
  await t.db.query(sql`UPDATE subscriptions SET current_period_end = current_period_end + interval '1 day' WHERE user_id = ${u.id}`);
  await waitFor('Play after the notification', async () => canPlay(await titlePage(cookie)));
  // another user's subscription leaves this user's entry alone
  const token = t.db.changes.token('subscriptions', `subscriptions:${u.id}`);
  const other = await createUser(t.db, { role: 'subscriber' });
  const before = t.db.changes.token(`subscriptions:${other.id}`);
  await t.db.query(insertSub(other.id, 'active'));
  await waitFor("the other user's notification", () => t.db.changes.token(`subscriptions:${other.id}`) !== before);
  assert.is(t.db.changes.token('subscriptions', `subscriptions:${u.id}`), token);
  // the subscription ends (expiry, dunning): no Play on the next page once the notification is in
  await t.db.query(sql`UPDATE subscriptions SET status = 'canceled', ended_at = ${now}, end_reason = 'voluntary' WHERE user_id = ${u.id}`);
  await waitFor('no Play after the cancel took effect', async () => !canPlay(await titlePage(cookie)));
});

test("billing's writes in this process show on the very next page, before any notification", async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.not.ok(canPlay(await titlePage(cookie)));
  // billing opens a subscription (openLive writes it through writeTransition, which drops this process's entry)
  await t.db.tx(async (q) => {
    const tr = await openLive(q, { userId: u.id, planId: (await q.one<{ id: number }>(`SELECT id FROM plans WHERE code = 'standard'`))!.id, at: now });
    await q.query(sql`UPDATE subscriptions SET status = 'active' WHERE id = ${tr.sub.id}`);
  });
  assert.ok(canPlay(await titlePage(cookie)), 'no waiting for the notification: billing dropped the entry itself');
});

test('resume position and finished titles follow the progress API at once', async () => {
  const u = await createUser(t.db, { role: 'subscriber' });
  await t.db.query(insertSub(u.id, 'active'));
  const cookie = await sessionCookie(t.db, u.id);
  assert.match(await titlePage(cookie), />▶ Play</);
  const report = (position: number, session?: number) => authedRequest(app, cookie, `/api/play/${movie}/progress`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ position, session }),
  });
  const s = (await (await report(1260)).json()).session;
  assert.match(await titlePage(cookie), /▶ Resume \(21 min in\)/);
  // finished: Play again from the start, and the title leaves other titles' More like this
  await report(209 * 60, s);
  assert.match(await titlePage(cookie), />▶ Play</);
  const similar = await t.db.query<{ id: number }>(sql`SELECT o.id FROM titles o WHERE o.id <> ${movie} AND EXISTS (
    SELECT 1 FROM title_directors a JOIN title_directors b USING (person_id) WHERE a.title_id = ${movie} AND b.title_id = o.id)`);
  for (const { id } of similar) {
    const page = await titlePage(cookie, id);
    const more = page.slice(page.indexOf('More like this'));
    assert.not.ok(more.includes(`href="/titles/${movie}"`), `finished title not offered on ${id}`);
  }
});

test.run();
