// Fault under the live business (README "Endpoints", the database unavailable): PostgreSQL stopped for 10 s while the
// live-traffic driver (visitors, subscribers and staff: analysts on reports, managers on dashboards) uses a real server
// process and its renewal batch runs. Checked:
//   - fail fast: every answer meanwhile is a page or 503 with Retry-After, none a 500, none missing (the driver's
//     request timeout is 9 s, under the 10 s outage: a request that hung would show as "no answer");
//   - serving again ≤ 5 s after PostgreSQL is back (a signed-in report request), and no 5xx after that;
//   - nothing lost or duplicated: every checkout that answered 303 has its subscription, each paid once (one succeeded
//     initial payment per subscription, one test-gateway charge per payment key, same outcome); payments unique per
//     subscription, kind, period and attempt; every due renewal charged exactly once once the jobs have caught up
//     (pending rows settled by the reconciler, as billing.reconcile-pending does); and visits — batched off the request
//     path, kept in memory while the database is away — written once each: the visits table holds exactly one row per
//     page the driver was answered 200 (pages answered during the outage from in-process caches included; a page that
//     answered 503 is no visit).
// The scheduler's clock is shifted (MARQUEE_TEST_CLOCK_SKEW_MS) so billing.renewals fires ~30 s after the start; the
// outage begins once its batch has written its first payments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sql from 'sql-template-tag';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';
import { createUser, sessionCookie } from './helpers/auth.ts';
import { createDb } from '../server/db/index.ts';
import { startEmbedded, freePort } from '../server/db/embedded.ts';
import { migrate } from '../server/db/migrate.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { createTestGateway } from '../server/billing/gateway.ts';
import { seedDueRenewals } from './helpers/due-renewals.ts';
import { reconcilePending } from '../server/billing/store.ts';
import { runBillingSteps } from '../server/billing/jobs.ts';
import { startTraffic, formatSummary, type TrafficSummary } from '../etl/traffic/driver.ts';
import { createStaffAccounts } from '../etl/traffic/staff.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DUE = 1500;

/** Status counts between two summaries, by kind. */
function diff(a: TrafficSummary, b: TrafficSummary): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [kind, st] of Object.entries(b.byKind)) {
    for (const [code, n] of Object.entries(st)) {
      const d = n - (a.byKind[kind]?.[code] ?? 0);
      if (d) (out[kind] ??= {})[code] = d;
    }
  }
  return out;
}
const bad = (d: Record<string, Record<string, number>>) => Object.entries(d).flatMap(([kind, st]) =>
  Object.entries(st).filter(([code]) => code === '0' || (Number(code) >= 500 && code !== '503')).map(([code, n]) => `${kind} ${code}×${n}`));
/** 5xx other than 503 (no answer left out: before and after the outage a slow answer is the machine's load, not the fault). */
const serverErrors = (d: Record<string, Record<string, number>>) => bad(d).filter((x) => !/ 0×/.test(x));
const count = (d: Record<string, Record<string, number>>, pred: (code: string) => boolean) =>
  Object.values(d).flatMap((st) => Object.entries(st)).filter(([c]) => pred(c)).reduce((a, [, n]) => a + n, 0);

test('database stopped 10 s under live traffic and a renewal batch: fail fast, serving again ≤ 5 s, nothing lost or duplicated', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-live-outage-'));
  fs.chmodSync(dir, 0o711);
  const outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-live-outbox-'));
  const port = await freePort();
  let pg = await startEmbedded({ dataDir: dir, fast: true, port, log: () => {} });
  const q = createDb(pg.url, { applicationName: 'marquee-fault-test', onError: () => {} });
  let s: ServerProcess | undefined;
  let traffic: ReturnType<typeof startTraffic> | undefined;
  try {
    await migrate(q);
    await loadTitles(q, path.join(import.meta.dirname, 'fixtures/etl/base.csv'));
    const logins = await createStaffAccounts(q, 'outage');
    const analyst = await createUser(q, { role: 'analyst' });
    const cookie = await sessionCookie(q, analyst.id);
    // DUE card customers whose period ended in the last hour (the renewal batch)
    const dueSubs = await seedDueRenewals(q, DUE, 'due');
    const seeded = (await q.one<{ id: number }>(sql`SELECT coalesce(max(id), 0)::int AS id FROM payments`))!.id; // paid before, not through the gateway

    const target = Date.now() + 30_000;
    s = await startServerProcess({ DATABASE_URL: pg.url, MARQUEE_OUTBOX_DIR: outbox, MARQUEE_SIGNUPS_PER_IP_HOUR: '100000',
      MARQUEE_TEST_CLOCK_SKEW_MS: String((60_000 - (target % 60_000)) % 60_000) });
    const report = `${s.url}/api/reports/kpi_mrr`;
    const ready = async () => (await fetch(report, { headers: { cookie } })).status === 200;
    for (const end = Date.now() + 120_000; !(await ready());) { if (Date.now() > end) throw new Error(`marts never ready:\n${s.out()}`); await sleep(250); }

    traffic = startTraffic({ base: s.url, users: 10, rate: 10, durationMs: 600_000, maxRequests: 1_000_000, seed: 5,
      outboxDir: outbox, declineShare: 0.3, signupShare: 0.15, requestTimeoutMs: 9000, emailTag: 'outage', log: () => {},
      staff: { analysts: 2, managers: 2, logins } });
    // the outage starts when the renewal batch has written its first rows (at the scheduler's next minute)
    for (const end = Date.now() + 120_000; ;) {
      const r = await q.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM payments WHERE kind = 'renewal'`);
      if (r!.n > 0) break;
      if (Date.now() > end) throw new Error(`the renewal batch never started:\n${s.out().slice(-3000)}`);
      await sleep(20);
    }
    const atStop = traffic.summary();
    await pg.stop();
    const down = Date.now();
    await sleep(10_000);
    const atRestart = traffic.summary();
    pg = await startEmbedded({ dataDir: dir, fast: true, port, log: () => {} });
    const back = Date.now();
    let firstOk = 0;
    const probeStatuses: number[] = [];
    while (!firstOk && Date.now() - back < 60_000) {
      const r = await fetch(report, { headers: { cookie }, signal: AbortSignal.timeout(8000) }).then((x) => x.status, () => 0);
      probeStatuses.push(r);
      if (r === 200) firstOk = Date.now(); else await sleep(100);
    }
    await sleep(2000);
    const settled = traffic.summary();
    await sleep(4000);
    const summary = await traffic.stop();
    traffic = undefined;
    const during = diff(atStop, atRestart), after = diff(settled, summary);
    const recovery = (firstOk - back) / 1000;
    console.log(`[faults] live outage (${((back - down) / 1000).toFixed(1)} s): during ${JSON.stringify(during)}; serving again ${recovery.toFixed(2)} s after ` +
      `PostgreSQL was back (probe ${JSON.stringify(probeStatuses)}); after ${JSON.stringify(after)}`);
    console.log(formatSummary(summary));
    assert.equal(serverErrors(diff({ ...atStop, byKind: {} }, atStop)), [], 'before the outage: no 500');
    assert.equal(bad(during), [], 'during the outage: pages or 503, never a 500 or no answer (no hang past 9 s)');
    assert.ok(count(during, (c) => c === '503') > 0, 'requests during the outage answered 503');
    assert.is(summary.unavailableWithoutRetryAfter, 0, 'every 503 carries Retry-After');
    assert.ok(firstOk > 0 && recovery <= 5, `serving again ${recovery} s after the database came back`);
    assert.equal(serverErrors(after), [], 'no 500 once it serves again');
    assert.is(count(after, (c) => c === '503'), 0, 'no 503 once it serves again');
    assert.ok(s.alive(), s.out().slice(-3000));
    const code = await s.stop();
    assert.is(code, 0, `the server stops cleanly (and writes its buffered visits):\n${s.out().slice(-3000)}`);
    assert.not.match(s.out(), /Unhandled|uncaught/i);

    // checkouts: each that answered 303 has its subscription, paid once
    const paid = await q.one<{ subs: number; users: number; doubled: number }>(sql`SELECT count(*)::int AS subs, count(DISTINCT s.user_id)::int AS users,
        count(*) FILTER (WHERE x.n > 1)::int AS doubled
      FROM subscriptions s JOIN users u ON u.id = s.user_id
      JOIN LATERAL (SELECT count(*)::int AS n FROM payments p WHERE p.subscription_id = s.id AND p.kind = 'initial' AND p.status = 'succeeded') x ON x.n > 0
      WHERE u.email LIKE 'outage-%'`);
    console.log(`[faults] checkouts: ${summary.subscriptions} answered 303; ${paid!.subs} paid subscriptions of ${paid!.users} people in the database`);
    assert.ok(paid!.subs >= summary.subscriptions, `every 303 checkout exists: ${JSON.stringify(paid)} vs ${summary.subscriptions}`);
    assert.is(paid!.subs, paid!.users, 'one paid subscription per person');
    assert.is(paid!.doubled, 0, 'no subscription paid twice');

    // the jobs catch up (the reconciler settles what the outage left pending, the renewals run again), then exactly once
    const gateway = createTestGateway(q);
    const pendingLeft = await q.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM payments WHERE status = 'pending'`);
    await reconcilePending(q, gateway, new Date(Date.now() + 60_000), { olderThanMs: 0, limit: 10_000 });
    await runBillingSteps(q, 'renewal', new Date(Date.now() + 60_000), { gateway, job: 'test.catch-up' }); // not the server's backoff row
    console.log(`[faults] after the outage ${pendingLeft!.n} payments were pending (settled by the reconciler)`);
    const dupes = await q.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM (SELECT subscription_id, kind, period_start, attempt, idempotency_key ~ ':upgrade:' AS up
      FROM payments GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1) d`);
    assert.is(dupes!.n, 0, 'one payment per subscription, kind, period and attempt');
    const renewals = await q.query<{ n: number; subs: number }>(sql`SELECT n, count(*)::int AS subs FROM (SELECT d.id, count(p.id)::int AS n
      FROM unnest(${dueSubs.map((d) => d.id)}::bigint[], ${dueSubs.map((d) => d.pe)}::timestamptz[]) AS d(id, pe)
      LEFT JOIN payments p ON p.subscription_id = d.id AND p.kind = 'renewal' AND p.period_start = d.pe GROUP BY d.id) x GROUP BY n`);
    assert.equal(renewals, [{ n: 1, subs: DUE }], 'every due renewal charged exactly once');
    const ledger = await q.one<{ mismatched: number; orphans: number; pending: number }>(sql`SELECT
        (SELECT count(*)::int FROM payments p LEFT JOIN test_gateway_charges g ON g.idempotency_key = p.idempotency_key
          WHERE p.id > ${seeded} AND p.status IN ('succeeded', 'failed')
            AND (g.idempotency_key IS NULL OR (g.status = 'succeeded') <> (p.status = 'succeeded'))) AS mismatched,
        (SELECT count(*)::int FROM test_gateway_charges g WHERE g.operation = 'charge'
          AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.idempotency_key = g.idempotency_key)) AS orphans,
        (SELECT count(*)::int FROM payments WHERE status = 'pending') AS pending`);
    assert.equal(ledger, { mismatched: 0, orphans: 0, pending: 0 }, 'the gateway ledger and the payments agree');

    // visits: one row per page answered 200
    const pages = Object.entries(summary.byKind).filter(([k]) => k.startsWith('GET ') && !k.startsWith('GET /api/'))
      .reduce((a, [, st]) => a + (st['200'] ?? 0), 0);
    const visits = await q.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM visits`);
    console.log(`[faults] visits: ${pages} pages answered 200, ${visits!.n} visits written`);
    assert.is(visits!.n, pages, 'every page view written once');
  } finally {
    await traffic?.stop();
    await s?.stop();
    await q.close().catch(() => {});
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outbox, { recursive: true, force: true });
  }
});

test.run();
