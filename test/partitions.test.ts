// Monthly partitions of the event tables (migration 0025, server/db/partitions.ts, README "Partitions"): the
// migration moves existing rows into their months; a write for a month without a partition lands in DEFAULT and the
// ensure step moves it out when it creates the month; an old month detaches; an incremental mart refresh plans only
// the months it reads; an idempotency key stays unique across months; the job runs once across two schedulers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sql from 'sql-template-tag';
import { createDatabase, useDatabase } from './helpers/db.ts';
import { migrate, readMigrations, SCHEMA_DIR } from '../server/db/migrate.ts';
import { ensurePartitions, detachMonth, partitionName, PartitionError, MONTHS_AHEAD } from '../server/db/partitions.ts';
import { startJobs } from '../server/jobs/index.ts';
import { partitionsJob } from '../server/jobs/registry.ts';
import { loadCatalog } from '../server/reports/engine.ts';
import { waitFor } from './helpers/sync.ts';
import type { Queryable } from '../server/db/index.ts';

const t = useDatabase(test);

const partitionOf = (q: Queryable, table: string, where: string, params: unknown[]) =>
  q.query<{ part: string; n: number }>(`SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM ${table} WHERE ${where} GROUP BY 1 ORDER BY 1`, params);

async function customer(q: Queryable, email: string): Promise<{ user: number; sub: number }> {
  const user = (await q.one<{ id: number }>(sql`INSERT INTO users (email, display_name) VALUES (${email}, 'P') RETURNING id`))!.id;
  const sub = (await q.one<{ id: number }>(sql`INSERT INTO subscriptions (user_id, plan_id, status, created_at, current_period_start, current_period_end)
    VALUES (${user}, (SELECT min(id) FROM plans), 'active', '2024-01-01', '2024-01-01', '2024-02-01') RETURNING id`))!.id;
  return { user, sub };
}

const payment = (c: { user: number; sub: number }, key: string, at: string) => sql`INSERT INTO payments (user_id, subscription_id, kind,
    period_start, period_end, amount_cents, status, idempotency_key, created_at, settled_at)
  VALUES (${c.user}, ${c.sub}, 'renewal', ${at}::timestamptz, ${at}::timestamptz + interval '1 month', 799, 'succeeded', ${key}, ${at}, ${at})`;

test('the migration moves every row of the unpartitioned tables into its month, ids and sequences kept', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-partitions-'));
  const before = readMigrations().filter((m) => m.version < 25);
  for (const m of before) fs.copyFileSync(m.file, path.join(dir, path.basename(m.file)));
  const d = await createDatabase({ empty: true, label: 'partitions_mig' });
  try {
    await migrate(d.db, { dir });
    const c = await customer(d.db, 'mig@x.io');
    await d.db.query(payment(c, 'mig-key-2024-03', '2024-03-10T00:00:00Z'));
    await d.db.query(payment(c, 'mig-key-2024-05', '2024-05-31T23:59:59Z'));
    await d.db.query(sql`INSERT INTO payment_charge_intents (payment_id, user_id, input, gateway_token, off_session, created_at)
      SELECT id, user_id, '{"type": "retry", "at": 0}', 'tok', true, created_at FROM payments WHERE idempotency_key = 'mig-key-2024-05'`);
    await d.db.query(sql`INSERT INTO visits (visitor_id, user_id, at, path, referrer_class) VALUES (gen_random_uuid(), ${c.user}, '2024-04-01T00:00:00Z', '/', 'direct')`);
    await d.db.query(sql`INSERT INTO subscription_events (subscription_id, user_id, at, type, to_status, plan_id, mrr_cents)
      VALUES (${c.sub}, ${c.user}, '2024-01-01', 'created', 'incomplete', (SELECT min(id) FROM plans), 0)`);
    const ids = await d.db.query(`SELECT id, idempotency_key FROM payments ORDER BY id`);
    await migrate(d.db, { dir: SCHEMA_DIR });
    assert.equal(await partitionOf(d.db, 'payments', 'true', []), [{ part: 'payments_2024_03', n: 1 }, { part: 'payments_2024_05', n: 1 }]);
    assert.equal(await partitionOf(d.db, 'visits', 'true', []), [{ part: 'visits_2024_04', n: 1 }]);
    assert.equal(await partitionOf(d.db, 'subscription_events', 'true', []), [{ part: 'subscription_events_2024_01', n: 1 }]);
    assert.equal(await d.db.query(`SELECT id, idempotency_key FROM payments ORDER BY id`), ids);
    // every month between the oldest row and three months after this one exists; the keys and the intent followed
    assert.ok(await d.db.one(`SELECT 1 FROM pg_class WHERE relname = 'payments_2024_04'`), 'the empty month between rows exists');
    assert.is((await d.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM payment_keys k JOIN payments p ON p.id = k.payment_id AND p.created_at = k.created_at`))!.n, 2);
    assert.is((await d.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM payment_charge_intents`))!.n, 1);
    const next = await d.db.one<{ id: number }>(sql`${payment(c, 'mig-key-after', '2024-05-02T00:00:00Z')} RETURNING id`);
    assert.ok(next!.id > Math.max(...ids.map((r) => Number(r.id))), 'the id sequence continues after the moved rows');
  } finally {
    await d.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a write for a month without a partition lands in DEFAULT; creating the month moves it there', async () => {
  const c = await customer(t.db, 'default@x.io');
  await t.db.query(payment(c, 'default-key-2019-06', '2019-06-15T12:00:00Z'));
  assert.equal(await partitionOf(t.db, 'payments', `idempotency_key = $1`, ['default-key-2019-06']), [{ part: 'payments_default', n: 1 }]);
  const created = await t.db.tx((q) => ensurePartitions(q, new Date('2019-05-20T00:00:00Z'), new Date('2019-06-01T00:00:00Z'), ['payments']));
  assert.equal(created, [{ table: 'payments', month: '2019-05', movedFromDefault: 0 }, { table: 'payments', month: '2019-06', movedFromDefault: 1 }]);
  assert.equal(await partitionOf(t.db, 'payments', `idempotency_key = $1`, ['default-key-2019-06']), [{ part: 'payments_2019_06', n: 1 }]);
  // its key still finds it, and a second ensure creates nothing
  assert.ok(await t.db.one(`SELECT 1 FROM payment_keys k JOIN payments p ON p.id = k.payment_id AND p.created_at = k.created_at
    WHERE k.idempotency_key = 'default-key-2019-06'`));
  assert.equal(await t.db.tx((q) => ensurePartitions(q, new Date('2019-05-01'), new Date('2019-06-30'), ['payments'])), []);
});

test('the same idempotency key in another month is refused, and a payment keeps its key and month', async () => {
  const c = await customer(t.db, 'unique@x.io');
  await t.db.query(payment(c, 'global-key-1', '2026-12-02T00:00:00Z'));
  for (const at of ['2027-01-05T00:00:00Z', '2026-12-20T00:00:00Z', '2010-01-01T00:00:00Z']) {
    const err = await t.db.query(payment(c, 'global-key-1', at)).then(() => null, (e) => e);
    assert.ok(err && /payment_keys_pkey/.test(err.message), `duplicate at ${at} refused: ${err?.message}`);
  }
  const moved = await t.db.query(`UPDATE payments SET created_at = '2027-01-05' WHERE idempotency_key = 'global-key-1'`).then(() => null, (e) => e);
  assert.match(moved?.message ?? '', /never change/);
  // deleting the payment releases its key
  await t.db.query(`DELETE FROM payments WHERE idempotency_key = 'global-key-1'`);
  await t.db.query(payment(c, 'global-key-1', '2027-01-05T00:00:00Z'));
  assert.is((await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM payment_keys WHERE idempotency_key = 'global-key-1'`))!.n, 1);
});

test('an old month detaches: its rows leave the table, its keys stay claimed; the current month is refused', async () => {
  const c = await customer(t.db, 'detach@x.io');
  await t.db.tx((q) => ensurePartitions(q, new Date('2020-02-01'), new Date('2020-02-01'), ['payments']));
  await t.db.query(payment(c, 'detach-key-2020-02', '2020-02-10T00:00:00Z'));
  const name = await detachMonth(t.db, 'payments', new Date('2020-02-10T00:00:00Z'));
  assert.is(name, 'payments_2020_02');
  assert.is((await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM payments WHERE created_at < '2020-03-01' AND created_at >= '2020-02-01'`))!.n, 0);
  assert.is((await t.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM payments_2020_02`))!.n, 1, 'the rows stay in the detached table');
  const again = await t.db.query(payment(c, 'detach-key-2020-02', '2020-02-11T00:00:00Z')).then(() => null, (e) => e);
  assert.ok(again, 'a detached month\'s key is never charged again');
  const refused = (month: Date) => detachMonth(t.db, 'payments', month).then(() => null, (e) => e);
  assert.instance(await refused(new Date()), PartitionError);
  assert.instance(await refused(new Date('2020-02-01')), PartitionError); // no longer a partition
});

test('an incremental refresh of a viewing mart plans only the months from its start on', async () => {
  const catalog = loadCatalog();
  const mart = catalog.marts.get('mart_title_watch_monthly')!;
  assert.ok(mart.usesSince);
  const since = new Date('2027-01-01T00:00:00Z');
  // as marts.ts runs it: the refresh SQL with :since bound as $1
  const plan = (await t.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${mart.refreshSql}`, [since])).map((r) => r['QUERY PLAN']).join('\n');
  const scanned = [...plan.matchAll(/on (watch_events_\w+)/g)].map((m) => m[1]).sort();
  const months = Array.from({ length: MONTHS_AHEAD + 1 }, (_, k) => new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth() + k, 1)))
    .filter((m) => m >= since).map((m) => partitionName('watch_events', m));
  assert.equal([...new Set(scanned)], [...months, 'watch_events_default'].sort(), plan);
  const all = (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'watch_events'::regclass`))[0]!.n;
  // a partition is counted once however often the plan reads it (the month list's bounds read them again)
  assert.ok(all > new Set(scanned).size, `${all} partitions, ${new Set(scanned).size} planned`);
});

test('partitions.ensure runs once across two schedulers and creates the months ahead', async () => {
  const tick = Date.parse('2031-05-01T02:13:00Z');
  const offset = tick - Date.now() - 1500; // both clocks reach the job's second in 1.5 s
  const clock = () => new Date(Date.now() + offset);
  const logs: string[] = [];
  const a = startJobs(t.db, [partitionsJob], (l) => logs.push(l), clock, { instance: 'runner-a' });
  const b = startJobs(t.db, [partitionsJob], (l) => logs.push(l), clock, { instance: 'runner-b' });
  try {
    await waitFor('the job\'s tick finished', async () => (await t.db.one(`SELECT 1 FROM job_runs WHERE job = 'partitions.ensure' AND finished_at IS NOT NULL`)) !== undefined);
  } finally {
    await a.stop();
    await b.stop();
  }
  const runs = await t.db.query(`SELECT claimed_by, outcome FROM job_runs WHERE job = 'partitions.ensure'`);
  assert.is(runs.length, 1, JSON.stringify(runs));
  assert.is(runs[0].outcome, 'done', logs.join('\n'));
  for (const m of ['2031_05', '2031_06', '2031_07', '2031_08']) {
    for (const table of ['watch_events', 'visits', 'payments', 'subscription_events'])
      assert.ok(await t.db.one(`SELECT 1 FROM pg_class WHERE relname = $1`, [`${table}_${m}`]), `${table}_${m}`);
  }
});

test.run();
