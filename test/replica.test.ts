// The read replica against a real streaming standby (test/helpers/replica-pair.ts: initdb, pg_basebackup -R, pg_ctl;
// its own clusters, whatever DATABASE_URL the run uses): reports read there (pg_is_in_recovery() inside the report
// says so), its lag folded into the as-of or, beyond MARQUEE_REPLICA_MAX_LAG_MS, the primary used; a stopped replica
// costs no request (the primary answers, the replica is used again once back); a replica that has not replayed a mart
// refresh yet never puts its old rows in the result cache under the new generation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb, withConnection, withDatabase, type Db } from '../server/db/index.ts';
import { withReplica } from '../server/db/replica.ts';
import { migrate } from '../server/db/migrate.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, streamCsv, type Catalog, type ResultCache } from '../server/reports/engine.ts';
import { createApp } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { waitFor } from './helpers/sync.ts';
import { startReplicaPair, replicaPairUnavailable, type ReplicaPair } from './helpers/replica-pair.ts';

const unavailable = replicaPairUnavailable();
let pair: ReplicaPair;
let primary: Db, replicaDirect: Db;
const routers: Db[] = [];
let catalog: Catalog;
let reportsDir: string;
const lines: string[] = [];
const log = (l: string) => { lines.push(l); };

// A mart over r_source and two reports that say where they ran: the mart's total, and live SQL over r_source.
const FILES: Record<string, string> = {
  'marts/mart_r_total.sql': `-- @mart mart_r_total
-- @unique k
-- @refresh 0 3 * * *
SELECT 1 AS k, count(*)::int AS n, coalesce(sum(amount), 0)::int AS total FROM r_source`,
  'r_total.sql': `-- @title Total (mart)
-- @chart kpi value=total
SELECT total, n, pg_is_in_recovery() AS on_replica FROM mart_r_total`,
  'r_live.sql': `-- @title Source rows (live)
-- @chart kpi value=n
SELECT count(*)::int AS n, pg_is_in_recovery() AS on_replica, current_setting('application_name') AS app FROM r_source`,
  'r_new.sql': `-- @title A table the test creates later (live)
-- @chart kpi value=n
SELECT count(*)::int AS n, pg_is_in_recovery() AS on_replica FROM r_new`,
};

function router(maxLagMs: number, retryMs = 5_000, user = 'postgres'): Db {
  const url = new URL(withDatabase(pair.replicaUrl, 'marquee'));
  url.username = user;
  const r = withReplica(primary, url.toString(), { maxLagMs, retryMs, log, max: 4 });
  routers.push(r);
  return r;
}

const run = (db: Db, id: string, cache: ResultCache | null = null) =>
  runReport(db, catalog, id, new URLSearchParams(), { role: 'admin', now: new Date(), cache });

/** The replica has replayed everything the primary has written so far. */
async function replicaCaughtUp() {
  const lsn = (await primary.one<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))!.lsn;
  await waitFor('the replica to replay the primary', async () =>
    (await replicaDirect.one<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]))?.ok);
}

async function pauseReplay() {
  await replicaDirect.query('SELECT pg_wal_replay_pause()');
  await waitFor('replay paused', async () => (await replicaDirect.one('SELECT pg_get_wal_replay_pause_state() AS s'))?.s === 'paused');
}

/** A write on the primary that the (paused) replica has received but not replayed. */
async function writeUnreplayed(sqlText: string) {
  await primary.query(sqlText);
  const lsn = (await primary.one<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))!.lsn;
  await waitFor('the replica to receive the write', async () =>
    (await replicaDirect.one<{ ok: boolean }>('SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS ok', [lsn]))?.ok);
}

test.before(async () => {
  if (unavailable) return;
  pair = await startReplicaPair();
  await withConnection(pair.primaryUrl, (c) => c.query('CREATE DATABASE marquee'));
  primary = createDb(withDatabase(pair.primaryUrl, 'marquee'), { max: 4, onError: () => {} });
  await migrate(primary);
  await primary.query('CREATE TABLE r_source (id serial PRIMARY KEY, amount int NOT NULL); INSERT INTO r_source (amount) VALUES (10), (20)');
  // an application role without superuser or pg_read_all_stats: what a real deployment connects as
  await primary.query('CREATE ROLE mq_reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO mq_reader');
  reportsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-replica-reports-'));
  for (const [f, text] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(reportsDir, f)), { recursive: true });
    fs.writeFileSync(path.join(reportsDir, f), text + '\n');
  }
  catalog = loadCatalog(reportsDir);
  await ensureMarts(primary, catalog);
  await refreshMarts(primary, catalog);
  await primary.query('GRANT SELECT ON ALL TABLES IN SCHEMA public TO mq_reader'); // the marts, made just now
  replicaDirect = createDb(withDatabase(pair.replicaUrl, 'marquee'), { max: 2, onError: () => {} });
  await waitFor('the replica to accept connections to the new database', () => replicaDirect.one('SELECT 1').catch(() => null));
  await replicaCaughtUp();
});

test.after(async () => {
  if (unavailable) return;
  for (const r of routers) await r.close().catch(() => {});
  await replicaDirect?.close().catch(() => {});
  await primary?.close().catch(() => {});
  pair?.stop();
  fs.rmSync(reportsDir, { recursive: true, force: true });
});

test('reports read on the replica; everything else stays on the primary', async () => {
  if (unavailable) { console.log(`  (skipped: ${unavailable})`); return; }
  assert.is((await replicaDirect.one('SELECT pg_is_in_recovery() AS r'))!.r, true, 'a real standby');
  const db = router(60_000);
  const live = await run(db, 'r_live');
  assert.equal(live.rows[0], { n: 2, on_replica: true, app: 'marquee replica reads' });
  const mart = await run(db, 'r_total');
  assert.equal(mart.rows[0], { total: 30, n: 2, on_replica: true });
  const csv = await streamCsv(db, catalog, 'r_live', new URLSearchParams(), { role: 'admin', now: new Date() });
  assert.match(await new Response(csv.body).text(), /^n,on_replica,app\r\n2,true,marquee replica reads\r\n$/);
  // plain queries and transactions of the same Db are the primary's (sessions, writes, lookups)
  assert.is((await db.one('SELECT pg_is_in_recovery() AS r'))!.r, false);
  assert.is(await db.tx(async (q) => (await q.one('SELECT pg_is_in_recovery() AS r'))!.r), false);
  const s = db.replica!.state();
  assert.is(s.state, 'up');
  assert.is(s.reads.replica, 3);
  assert.is(s.reads.primary, 0);
});

test('HTTP: /api/reports answers from the replica, /readyz shows its state', async () => {
  if (unavailable) { console.log(`  (skipped: ${unavailable})`); return; }
  const readDb = router(60_000);
  const app = createApp({ db: primary, readDb, catalog, config: defaultConfig({ reportCache: false }), log });
  const admin = await createUser(primary, { role: 'admin' });
  const cookie = await sessionCookie(primary, admin.id);
  const res = await authedRequest(app, cookie, '/api/reports/r_live.json');
  assert.is(res.status, 200);
  assert.equal(await res.json(), [{ n: 2, on_replica: true, app: 'marquee replica reads' }]);
  const ready = await (await app.request('/readyz')).json();
  assert.is(ready.status, 'ready');
  assert.is(ready.replica.state, 'up');
  assert.is(ready.replica.reads.replica, 1);
});

test('lag: folded into the as-of within MARQUEE_REPLICA_MAX_LAG_MS; beyond it the primary answers', async () => {
  if (unavailable) { console.log(`  (skipped: ${unavailable})`); return; }
  await replicaCaughtUp();
  const lenient = router(3_600_000), strict = router(1);
  const caughtUp = await run(lenient, 'r_live');
  assert.is(caughtUp.rows[0].on_replica, true);
  assert.ok(Date.now() - Date.parse(caughtUp.asOf) < 60_000, 'an idle replica that replayed all it received is not behind');
  // caught up (nothing received left to replay: polled, as a checkpoint record may be in flight) is within even a 1 ms
  // limit, also as seen by a role that sees only the WAL receiver's pid (its status is for pg_read_all_stats)
  const onReplica = (db: Db, id: string) => async () => (await run(db, id)).rows[0].on_replica as boolean;
  await waitFor('a caught-up replica within 1 ms', onReplica(strict, 'r_live'));
  const unprivileged = router(1, 5_000, 'mq_reader');
  await waitFor('the same for an unprivileged role', onReplica(unprivileged, 'r_live'));
  await waitFor('and a mart report', onReplica(unprivileged, 'r_total'));
  await pauseReplay();
  try {
    const before = new Date();
    await writeUnreplayed('INSERT INTO r_source (amount) VALUES (5)');
    const behind = await run(lenient, 'r_live');
    assert.equal(behind.rows[0], { n: 2, on_replica: true, app: 'marquee replica reads' }, 'the replica does not have the new row yet');
    const replayedAt = (await replicaDirect.one<{ t: Date }>('SELECT pg_last_xact_replay_timestamp() AS t'))!.t;
    assert.is(behind.asOf, replayedAt.toISOString(), 'as of the last commit the replica replayed');
    assert.ok(Date.parse(behind.asOf) < before.getTime());
    assert.ok(lenient.replica!.state().lagMs! > 0);
    // the same moment with a 1 ms limit: the primary answers, with the new row, as of now
    const fallback = await run(strict, 'r_live');
    assert.equal(fallback.rows[0], { n: 3, on_replica: false, app: 'marquee' });
    assert.ok(Date.parse(fallback.asOf) >= before.getTime());
    assert.is(strict.replica!.state().state, 'behind');
    assert.is(strict.replica!.state().reads.primary, 1);
    // a table the replica has not replayed yet (a migration just ran): the primary answers, not an error
    await writeUnreplayed('CREATE TABLE r_new (id int); GRANT SELECT ON r_new TO mq_reader');
    assert.equal((await run(lenient, 'r_new')).rows[0], { n: 0, on_replica: false });
  } finally {
    await replicaDirect.query('SELECT pg_wal_replay_resume()');
  }
  await replicaCaughtUp();
  assert.equal((await run(lenient, 'r_live')).rows[0], { n: 3, on_replica: true, app: 'marquee replica reads' });
  await waitFor('caught up again: within even a 1 ms limit', onReplica(strict, 'r_live'));
});

test('a replica behind the primary\'s mart generation never fills the cache with its old rows', async () => {
  if (unavailable) { console.log(`  (skipped: ${unavailable})`); return; }
  await refreshMarts(primary, catalog);
  await replicaCaughtUp();
  const db = router(3_600_000);
  const cache: ResultCache = new Map();
  const first = await run(db, 'r_total', cache);
  assert.equal(first.rows[0], { total: 35, n: 3, on_replica: true });
  assert.is((await run(db, 'r_total', cache)).cached, true);
  await pauseReplay();
  try {
    await primary.query('INSERT INTO r_source (amount) VALUES (100)');
    await refreshMarts(primary, catalog); // a new generation on the primary, received but not replayed by the replica
    const lsn = (await primary.one<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))!.lsn;
    await waitFor('the replica to receive the refresh', async () =>
      (await replicaDirect.one<{ ok: boolean }>('SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn AS ok', [lsn]))?.ok);
    assert.equal((await replicaDirect.one('SELECT total FROM mart_r_total'))!.total, 35, 'the replica still holds the old mart');
    const fresh = await run(db, 'r_total', cache);
    assert.equal(fresh.rows[0], { total: 135, n: 4, on_replica: false }, 'the new generation is read on the primary');
    assert.is(fresh.cached, false);
    const again = await run(db, 'r_total', cache);
    assert.is(again.cached, true);
    assert.equal(again.rows[0], fresh.rows[0], 'the cache holds the new generation\'s rows');
    const csv = await streamCsv(db, catalog, 'r_total', new URLSearchParams(), { role: 'admin', now: new Date() });
    assert.match(await new Response(csv.body).text(), /\r\n135,4,false\r\n$/, 'the CSV (ETagged by generation) too');
  } finally {
    await replicaDirect.query('SELECT pg_wal_replay_resume()');
  }
  await replicaCaughtUp();
  assert.is((await run(db, 'r_total', cache)).cached, true, 'same generation once replayed: the cached answer');
  assert.equal((await run(db, 'r_total')).rows[0], { total: 135, n: 4, on_replica: true });
});

test('replica stopped: the primary answers (no 5xx), the replica is skipped for a while, then used again', async () => {
  if (unavailable) { console.log(`  (skipped: ${unavailable})`); return; }
  const readDb = router(60_000, 300);
  const app = createApp({ db: primary, readDb, catalog, config: defaultConfig({ reportCache: false }), log });
  const admin = await createUser(primary, { role: 'admin' });
  const cookie = await sessionCookie(primary, admin.id);
  const where = async () => {
    const res = await authedRequest(app, cookie, '/api/reports/r_live.json');
    assert.is(res.status, 200, await res.clone().text());
    return (await res.json())[0].on_replica as boolean;
  };
  assert.is(await where(), true); // a pooled connection to the replica now exists
  pair.stopReplica();
  try {
    assert.is(await where(), false, 'pooled connection terminated: the primary answers');
    assert.is(readDb.replica!.state().state, 'down');
    assert.is(await where(), false, 'while down: straight to the primary');
    assert.is(readDb.replica!.state().reads.primary, 2);
    const ready = await app.request('/readyz');
    assert.is(ready.status, 200, 'a replica down does not make the server unready');
    assert.is((await ready.json()).replica.state, 'down');
    // the retry (after 300 ms here) finds it still down (connection refused): the primary again
    await new Promise((r) => setTimeout(r, 400));
    assert.is(await where(), false);
  } finally {
    pair.startReplica();
  }
  await waitFor('the replica to be used again', () => where(), { everyMs: 200 });
  assert.is(readDb.replica!.state().state, 'up');
  assert.ok(lines.some((l) => /\[replica\] .* is down/.test(l)), 'the operator is told');
});

test.run();
