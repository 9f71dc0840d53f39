// Incremental marts on the simulator's `--scale small` history (2,000 customers, 12 months ending today): the first
// build is full, later refreshes replace only the trailing window (from the month holding the last refresh minus a day), and
// after new billing, viewing and visits in the current month that window gives exactly the rows of a full rebuild.
// A history rewrite (a simulation run, recorded in simulation_runs) makes the next refresh a full rebuild.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import type { MartRefreshResult } from '../server/reports/marts.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { Fixture } from './fixtures/metrics/builder.ts';

const t = useDatabase(test);
let catalog: Catalog;
let incremental: string[];

test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  catalog = loadCatalog();
  incremental = catalog.martOrder.filter((n) => catalog.marts.get(n)!.incremental);
  await ensureMarts(t.db, catalog);
});

async function refresh(opts: { full?: boolean } = {}): Promise<Map<string, MartRefreshResult>> {
  const out = await refreshMarts(t.db, catalog, opts);
  const failed = out.results.filter((r) => !r.ok);
  if (failed.length) throw new Error(`mart refresh failed: ${JSON.stringify(failed)}`);
  return new Map(out.results.map((r) => [r.mart, r]));
}

/** Every mart's rows as sorted text: equal snapshots mean equal contents. */
async function snapshot(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const n of catalog.martOrder) out[n] = (await t.db.query(`SELECT t::text AS r FROM ${n} t ORDER BY 1`)).map((r) => r.r);
  return out;
}

/**
 * The UTC months of every mart's last refresh (as_of = its transaction's now(), which ends each mart's current month).
 * Two snapshots compare only when both were built in one month: if a month began between them (or during a run),
 * the current month's end moved and the comparison is made again (the next month is weeks away).
 */
async function refreshMonths(): Promise<string[]> {
  return (await t.db.query(`SELECT DISTINCT to_char(as_of AT TIME ZONE 'UTC', 'YYYY-MM') AS m FROM report_marts ORDER BY 1`)).map((r) => r.m);
}
const oneMonth = (a: string[], b: string[]) => a.length === 1 && b.length === 1 && a[0] === b[0];

const monthStart = (d: Date, back = 0) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - back, 1));

test('before any billing or activity every mart builds, empty', async () => {
  const first = await refresh();
  for (const [n, r] of first) assert.equal([r.mode, r.why, r.rows], ['full', incremental.includes(n) ? 'first build' : 'not @incremental', 0], n);
});

test('the simulation rebuilds in full; the next refresh of an @incremental mart starts at the month of its last refresh minus its lookback', async () => {
  assert.ok(incremental.includes('mart_mrr_monthly') && incremental.includes('mart_title_watch_monthly'));
  await runSimulation(t.db, parseArgs(['--scale', 'small', '--seed', '23', '--quiet']));
  const first = await refresh();
  for (const [n, r] of first) assert.equal([r.mode, r.why], ['full', incremental.includes(n) ? 'history rewritten since the last build' : 'not @incremental'], n);
  const asOf = (await t.db.one(`SELECT as_of FROM report_marts WHERE name = 'mart_mrr_monthly'`))!.as_of as Date;
  const second = await refresh();
  for (const n of incremental) {
    assert.is(second.get(n)!.mode, 'incremental', n);
    const back = n === 'mart_payment_attempts_monthly' ? monthStart(asOf, 1) : monthStart(new Date(asOf.getTime() - 86_400_000));
    assert.is(second.get(n)!.since!.getTime(), back.getTime(), n);
  }
  assert.is(second.get('mart_cohort_monthly')!.mode, 'full', 'a mart without @incremental is recomputed whole');
  const h = await t.db.query(`SELECT mode, since FROM mart_refreshes WHERE mart = 'mart_viewers_daily' ORDER BY id`);
  assert.equal(h.map((r) => r.mode), ['full', 'full', 'incremental']);
  assert.is(h[1].since, null);
});

test('after new events in the current month, an incremental refresh gives exactly the rows of a full rebuild', async () => {
  const before = await snapshot();
  const now = Date.now();
  const t0 = new Date(Math.max(now - 120_000, monthStart(new Date(now)).getTime()));
  const later = (s: number) => new Date(Math.min(t0.getTime() + s * 1000, now - 1));
  const f = new Fixture(t.db);
  // a new customer: visit, signup, subscription, upgrade with a proration, a refund, some viewing
  const visitor = '00000000-0000-4000-8000-00000000a001';
  await f.visit(visitor, t0);
  const u = await f.user({ country: 'BR', createdAt: t0 });
  await f.visit(visitor, later(1), u, '/signup');
  const sub = await f.subscribe(u, 'standard_with_ads', later(2));
  await f.changePlan(sub, 'premium', later(3), 1000);
  await f.refundLatest(sub, later(4), 500);
  const title = (await t.db.one(`SELECT id FROM titles ORDER BY id LIMIT 1`))!.id;
  await f.watch(u, title, later(5), 1200, true);
  // existing customers: one cancels now, one changes plan now (a plan with prorations in closed months, if any), and
  // two watch; an existing visitor comes back
  const live = await t.db.query(`SELECT s.id, s.user_id, s.plan_id, e.to_status FROM subscriptions s
    CROSS JOIN LATERAL (SELECT to_status FROM subscription_events e WHERE e.subscription_id = s.id ORDER BY at DESC, id DESC LIMIT 1) e
    WHERE s.status = 'active' AND e.to_status = 'active'
    ORDER BY (SELECT count(*) FROM payments p WHERE p.subscription_id = s.id AND p.kind = 'proration') DESC, s.id LIMIT 2`);
  assert.is(live.length, 2);
  const [quit, mover] = live;
  await t.db.tx(async (q) => {
    await q.query(sql`INSERT INTO subscription_events (subscription_id, user_id, at, type, from_status, to_status, plan_id, mrr_cents)
      VALUES (${quit.id}, ${quit.user_id}, ${later(6)}, 'canceled', 'active', 'canceled', ${quit.plan_id}, 0)`);
    await q.query(sql`UPDATE subscriptions SET status = 'canceled', ended_at = ${later(6)}, end_reason = 'voluntary' WHERE id = ${quit.id}`);
    const to = (await q.one(sql`SELECT id, monthly_cents FROM plans WHERE id <> ${mover.plan_id} AND billing_interval = 'month' ORDER BY id LIMIT 1`))!;
    await q.query(sql`INSERT INTO subscription_events (subscription_id, user_id, at, type, from_status, to_status, plan_id, mrr_cents)
      VALUES (${mover.id}, ${mover.user_id}, ${later(7)}, 'plan_changed', 'active', 'active', ${to.id}, ${to.monthly_cents})`);
    await q.query(sql`UPDATE subscriptions SET plan_id = ${to.id} WHERE id = ${mover.id}`);
  });
  await f.watch(quit.user_id, title, later(8), 600);
  await f.watch(mover.user_id, title, later(9), 300, true);
  const old = (await t.db.one(`SELECT visitor_id FROM visits WHERE at < date_trunc('month', now()) ORDER BY at DESC LIMIT 1`))!.visitor_id;
  await f.visit(old, later(10));

  for (let attempt = 0; ; attempt++) {
    const inc = await refresh();
    for (const n of incremental) assert.is(inc.get(n)!.mode, 'incremental', n);
    const incMonths = await refreshMonths();
    const after = await snapshot();
    if (attempt === 0) {
      for (const n of ['mart_mrr_monthly', 'mart_cash_monthly', 'mart_payment_attempts_monthly', 'mart_signups_monthly',
        'mart_title_watch_monthly', 'mart_viewers_daily', 'mart_viewers_monthly', 'mart_visits_monthly']) {
        assert.not.equal(after[n], before[n], `${n} took in the new events`);
      }
    }
    const full = await refresh({ full: true });
    for (const n of catalog.martOrder) assert.is(full.get(n)!.mode, 'full', n);
    const rebuilt = await snapshot();
    if (!oneMonth(incMonths, await refreshMonths()) && attempt === 0) continue; // a month began meanwhile: again
    for (const n of catalog.martOrder) assert.equal(after[n], rebuilt[n], `${n}: incremental = full rebuild`);
    break;
  }
});

test('a history rewrite (a simulation run) makes the next refresh a full rebuild', async () => {
  const epoch = (await t.db.one(`SELECT epoch FROM history_epoch`))!.epoch;
  assert.is((await refresh()).get('mart_mrr_monthly')!.mode, 'incremental');
  // a new simulated history replaces the old one (different seed, fewer customers), months back included
  await runSimulation(t.db, parseArgs(['--users', '300', '--seed', '24', '--reset', '--quiet']));
  assert.ok((await t.db.one(`SELECT epoch FROM history_epoch`))!.epoch > epoch, 'the run moved the history epoch');
  const r = await refresh();
  for (const n of incremental) assert.equal([r.get(n)!.mode, r.get(n)!.why], ['full', 'history rewritten since the last build'], n);
  let rebuilt = await snapshot();
  const asOf = (await t.db.one(`SELECT as_of FROM report_marts WHERE name = 'mart_mrr_monthly'`))!.as_of as Date;
  const oldest = (await t.db.query(`SELECT min(month) AS m FROM mart_mrr_monthly`))[0].m;
  assert.ok(oldest < monthStart(asOf, 3).toISOString().slice(0, 10), 'closed months were recomputed');
  for (let attempt = 0; ; attempt++) {
    const first = await refreshMonths();
    await refresh({ full: true });
    const again = await snapshot();
    if (!oneMonth(first, await refreshMonths()) && attempt === 0) { rebuilt = again; continue; } // a month began meanwhile
    assert.equal(again, rebuilt);
    break;
  }
  // and the rebuild recorded the epoch: the refresh after it is incremental again
  assert.is((await refresh()).get('mart_mrr_monthly')!.mode, 'incremental');
});

test('a titles load makes the next refresh of an @incremental mart that reads the catalog a full rebuild, and only of those', async () => {
  assert.ok(catalog.marts.get('mart_title_watch_ranges')!.readsCatalog);
  assert.not.ok(catalog.marts.get('mart_mrr_monthly')!.readsCatalog);
  assert.is((await refresh()).get('mart_title_watch_ranges')!.mode, 'incremental');
  // the most-watched title of the oldest range, renamed and moved to another genre (as a corrected CSV would)
  const top = (await t.db.one(`SELECT title_id, from_month, to_month FROM mart_title_watch_ranges ORDER BY from_month, to_month, rank LIMIT 1`))!;
  const genre = (await t.db.one(`SELECT id FROM genres WHERE id NOT IN (SELECT genre_id FROM title_genres WHERE title_id = $1) ORDER BY id LIMIT 1`, [top.title_id]))!.id;
  await t.db.tx(async (q) => {
    await q.query(`UPDATE titles SET title = 'Renamed by a later load' WHERE id = $1`, [top.title_id]);
    await q.query(`DELETE FROM title_genres WHERE title_id = $1`, [top.title_id]);
    await q.query(`INSERT INTO title_genres (title_id, genre_id) VALUES ($1, $2)`, [top.title_id, genre]);
  });
  const r = await refresh();
  assert.equal([r.get('mart_title_watch_ranges')!.mode, r.get('mart_title_watch_ranges')!.why], ['full', 'the titles catalog was loaded since the last full build']);
  assert.is(r.get('mart_mrr_monthly')!.mode, 'incremental', 'marts that do not read the catalog keep their window');
  const row = (await t.db.one(`SELECT title, genre_ids FROM mart_title_watch_ranges WHERE title_id = $1 AND from_month = $2 AND to_month = $3`, [top.title_id, top.from_month, top.to_month]))!;
  assert.equal([row.title, row.genre_ids], ['Renamed by a later load', [genre]], 'a closed range has the catalog as loaded now');
  assert.is((await refresh()).get('mart_title_watch_ranges')!.mode, 'incremental', 'and the next refresh is incremental again');
});

test.run();
