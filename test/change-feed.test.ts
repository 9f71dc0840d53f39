// In-process caches (session lookups, mart generations) and the change feed that invalidates them: two Db handles on
// one database stand for two server processes. A change made "in another process" reaches this one's cache through
// NOTIFY; a change that notifies nobody (triggers off) proves the cache really serves from memory; the feed going down
// turns the caches off, so a request reads the table again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/reports/basic');
let other: Db; // "another process"
let catalog: Catalog;
let app: ReturnType<typeof createApp>;

/** Polls until `check` holds (a notification takes a moment to arrive); fails after a generous 30 s (a loaded machine
 * is slow, not wrong). */
async function eventually(what: string, check: () => Promise<boolean>) {
  const until = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > until) assert.unreachable(`not within 30 s: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A write no trigger sees (no notification): only a cache that really serves from memory misses it. */
const silently = (db: Db, text: string) => db.tx(async (q) => {
  await q.query('SET LOCAL session_replication_role = replica');
  await q.query(text);
});

const sees = async (cookie: string, id: string) => {
  const res = await authedRequest(app, cookie, '/api/reports');
  if (res.status !== 200) return false;
  return (await res.json()).reports.some((r: any) => r.id === id);
};
const status = async (cookie: string) => (await authedRequest(app, cookie, '/api/reports')).status;

test.before(async () => {
  other = createDb(t.url, { max: 2, onError: () => {} });
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g, g FROM generate_series(0, 40) g`);
  catalog = loadCatalog(FIXTURES);
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, log: () => {} });
  await eventually('the feed is live', async () => t.db.changes.token('sessions') !== null);
});

test.after(async () => { await other.close(); });

test('a session is served from memory until another process changes the user', async () => {
  const u = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.ok(await sees(cookie, 'fx_admin_only'));
  // demoted without a notification: the cached session still says admin — it came from memory
  await silently(other, `UPDATE users SET role = 'analyst' WHERE id = ${u.id}`);
  assert.ok(await sees(cookie, 'fx_admin_only'), 'the second request was served from the cache');
  // the same change, notified: this process drops what it cached and reads the analyst
  await other.query(`UPDATE users SET role = 'analyst' WHERE id = ${u.id}`);
  await eventually('the role change reaches the cache', async () => !(await sees(cookie, 'fx_admin_only')));
  // disabled elsewhere: refused here
  await other.query(`UPDATE users SET status = 'disabled' WHERE id = ${u.id}`);
  await eventually('the disabled user is refused', async () => (await status(cookie)) === 401);
});

test('a session ended in another process (logout, sign out everywhere) is refused here', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.is(await status(cookie), 200);
  await other.query(`DELETE FROM sessions WHERE user_id = ${u.id}`);
  await eventually('the ended session is refused', async () => (await status(cookie)) === 401);
});

test('a session ended in this process is refused at once, before its notification arrives', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.is(await status(cookie), 200);
  const res = await authedRequest(app, cookie, '/logout', { method: 'POST', body: {} });
  assert.ok(res.status < 400, `logout: ${res.status}`);
  assert.is(await status(cookie), 401);
});

test('with the feed down nothing is cached: every request reads the tables', async () => {
  const u = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, u.id);
  assert.ok(await sees(cookie, 'fx_admin_only'));
  await other.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = 'marquee changes' AND datname = current_database()`);
  await eventually('the feed notices it is down', async () => t.db.changes.token('sessions') === null);
  await silently(other, `UPDATE users SET role = 'analyst' WHERE id = ${u.id}`);
  assert.not.ok(await sees(cookie, 'fx_admin_only'), 'read from the table, not the cache');
  // it comes back by itself, and what was cached before is not trusted
  await eventually('the feed reconnects', async () => t.db.changes.token('sessions') !== null);
  await silently(other, `UPDATE users SET role = 'admin' WHERE id = ${u.id}`);
  assert.ok(await sees(cookie, 'fx_admin_only'));
});

test('a mart refreshed by another process is served in its new generation here', async () => {
  const u = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, u.id);
  const get = async () => (await authedRequest(app, cookie, '/api/reports/fx_by_kind')).json();
  const before = await get();
  assert.is((await get()).asOf, before.asOf);
  await new Promise((r) => setTimeout(r, 10));
  await other.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('a', '2026-03-01', 1000)`);
  const out = await refreshMarts(other, catalog);
  assert.ok(out.ran && out.results.every((r) => r.ok));
  await eventually('the new generation is served', async () => (await get()).asOf !== before.asOf);
  const after = await get();
  assert.is(after.rowCount, before.rowCount + 1); // the new day's row
});

test.run();
