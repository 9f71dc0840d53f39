// Fault under the live business (README "Billing jobs and the staff side", faults): `kill -9` of a real server process
// (server/main.ts) in the middle of its renewal batch, then a restart. "In the middle" is read from the ledger: some
// renewals settled, others not (pending or not started). After the restarted server's jobs run, every due renewal is
// charged exactly once: one renewal payment per subscription and period, one test-gateway ledger row per payment key
// with the same outcome, no payment left pending, every subscription one period further.
// The scheduler's clock is shifted (MARQUEE_TEST_CLOCK_SKEW_MS) so its next whole minute, when billing.renewals and
// billing.reconcile-pending fire, comes 30 s after the process is started (it is ready in 3-20 s, by the machine's load) instead
// of up to 60 s later.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sql from 'sql-template-tag';
import { createDatabase, type TestDatabase } from './helpers/db.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';
import { seedDueRenewals } from './helpers/due-renewals.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DUE = 4000;

/** A skew that puts the scheduler's next whole minute `leadMs` from now. */
function skewForMinuteIn(leadMs: number): string {
  const target = Date.now() + leadMs;
  return String((60_000 - (target % 60_000)) % 60_000);
}

async function renewalState(td: TestDatabase) {
  return (await td.db.one<{ settled: number; pending: number }>(sql`SELECT count(*) FILTER (WHERE status <> 'pending')::int AS settled,
    count(*) FILTER (WHERE status = 'pending')::int AS pending FROM payments WHERE kind = 'renewal'`))!;
}

test('kill -9 in the middle of a renewal batch, restart: every due renewal charged exactly once, none left pending', async () => {
  const td = await createDatabase();
  let s: ServerProcess | undefined;
  try {
    // DUE customers with a card on file, each with one active subscription whose period ended in the last hour
    const before = await seedDueRenewals(td.db, DUE, 'renew');

    // 1. the renewal batch starts at the scheduler's next minute; killed once some renewals are settled and others not
    const t0 = Date.now();
    const mark = (what: string) => console.log(`[faults] +${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);
    const env = { DATABASE_URL: td.url };
    s = await startServerProcess({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: skewForMinuteIn(30_000) });
    mark('server ready');
    let at: { settled: number; pending: number } | undefined;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const r = await renewalState(td);
      // best: a batch between its pending rows and their settlement; else any point with work left
      if (r.settled > 0 && (r.pending > 0 || r.settled >= DUE / 2)) { s.child.kill('SIGKILL'); at = r; break; }
      await sleep(5);
    }
    assert.ok(at, `the renewal batch never started:\n${s.out().slice(-3000)}`);
    await s.stop();
    const killed = await renewalState(td);
    console.log(`[faults] kill -9 with ${at!.settled} renewals settled and ${at!.pending} pending; after the kill: ${killed.settled} settled, ` +
      `${killed.pending} pending, ${DUE - killed.settled - killed.pending} not started`);
    assert.ok(killed.settled > 0 && killed.settled < DUE, `killed in the middle: ${JSON.stringify(killed)}`);

    mark('killed');
    // 2. restart: the next minute's renewals take the rest, billing.reconcile-pending settles the pending rows
    s = await startServerProcess({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: skewForMinuteIn(30_000) });
    mark('restarted');
    const end = Date.now() + 150_000;
    let r = await renewalState(td);
    while (Date.now() < end && !(r.settled === DUE && r.pending === 0)) { await sleep(250); r = await renewalState(td); }
    mark('all settled');
    const code = await s.stop();
    assert.is(code, 0, s.out().slice(-2000));
    assert.equal(r, { settled: DUE, pending: 0 }, `every renewal settled after the restart:\n${s.out().slice(-3000)}`);

    // 3. exactly once, against the ledger
    const perSub = await td.db.query<{ n: number; subs: number }>(sql`SELECT n, count(*)::int AS subs FROM (SELECT s.id, count(p.id)::int AS n
      FROM subscriptions s LEFT JOIN payments p ON p.subscription_id = s.id AND p.kind = 'renewal' GROUP BY s.id) x GROUP BY n ORDER BY n`);
    assert.equal(perSub, [{ n: 1, subs: DUE }], 'one renewal payment per subscription');
    const periods = await td.db.one<{ bad: number }>(sql`SELECT count(*)::int AS bad FROM payments p
      JOIN unnest(${before.map((b) => b.id)}::bigint[], ${before.map((b) => b.pe)}::timestamptz[]) AS b(id, pe) ON b.id = p.subscription_id
      WHERE p.kind = 'renewal' AND (p.period_start <> b.pe OR p.attempt <> 1)`);
    assert.is(periods!.bad, 0, 'each renewal is attempt 1 of the period that starts at the old period end');
    const ledger = (await td.db.one<{ charges: number; keys: number; mismatched: number; orphans: number }>(sql`SELECT
        (SELECT count(*)::int FROM test_gateway_charges WHERE operation = 'charge' AND idempotency_key LIKE 'sub:%') AS charges,
        (SELECT count(DISTINCT idempotency_key)::int FROM test_gateway_charges WHERE operation = 'charge' AND idempotency_key LIKE 'sub:%') AS keys,
        (SELECT count(*)::int FROM payments p LEFT JOIN test_gateway_charges g ON g.idempotency_key = p.idempotency_key
          WHERE p.kind = 'renewal' AND (g.idempotency_key IS NULL OR g.status <> p.status)) AS mismatched,
        (SELECT count(*)::int FROM test_gateway_charges g WHERE g.operation = 'charge' AND g.idempotency_key LIKE 'sub:%'
          AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.idempotency_key = g.idempotency_key)) AS orphans`))!;
    assert.equal(ledger, { charges: DUE, keys: DUE, mismatched: 0, orphans: 0 }, 'one gateway charge per renewal key, the same outcome in both ledgers');
    const subs = await td.db.one<{ bad: number }>(sql`SELECT count(*)::int AS bad FROM subscriptions s
      JOIN unnest(${before.map((b) => b.id)}::bigint[], ${before.map((b) => b.pe)}::timestamptz[]) AS b(id, pe) ON b.id = s.id
      WHERE s.current_period_start <> b.pe OR s.status <> 'active'`);
    assert.is(subs!.bad, 0, 'every subscription renewed once: active, one period further');
    const events = await td.db.query<{ n: number; subs: number }>(sql`SELECT n, count(*)::int AS subs FROM (SELECT subscription_id, count(*)::int AS n
      FROM subscription_events WHERE type = 'renewed' GROUP BY subscription_id) x GROUP BY n`);
    assert.equal(events, [{ n: 1, subs: DUE }], 'one renewed event per subscription');
  } finally {
    await s?.stop();
    await td.drop();
  }
});

test.run();
