// The billing jobs (server/billing/jobs.ts) with an injected clock and the test gateway: renewals, dunning to an
// involuntary cancel, cancels and downgrades at period end, expiry of incomplete subscriptions, catch-up after three
// days down (each step once, in due order, stamped at its due instant, history_epoch bumped for closed months), two
// runners at once, a runner killed with SIGKILL mid-batch then run again, a gateway outage (back off, nothing changed),
// and simulated customers renewing at their model's failure rate.
import { defaultConfig } from '../server/config.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser } from './helpers/auth.ts';
import { createDb } from '../server/db/index.ts';
import { createTestGateway, type TestGateway } from '../server/billing/gateway.ts';
import { applyLive, loadPlans, openLive, reconcilePending, saveCard, type Plans } from '../server/billing/store.ts';
import { DAY_MS, RETRY_DAYS, addMonthsAnchored } from '../server/billing/machine.ts';
import { runBillingSteps, loadSimulationModel, simulatedAnswer, INCOMPLETE_EXPIRES_MS, type StepKind } from '../server/billing/jobs.ts';
import { scheduledJobs } from '../server/jobs/registry.ts';
import { removeSimulated } from '../etl/simulator/run.ts';

const t = useDatabase(test);
let gw: TestGateway;
let plans: Plans;
const GOOD = '4242424242424242', DECLINE = '4000000000000002', OFF_SESSION_FAILS = '4000000000000341';

test.before(async () => {
  gw = createTestGateway(t.db);
  plans = await loadPlans(t.db);
});

/** A customer with an active subscription created at `at` (its first payment succeeded), and a card that behaves as `card`. */
async function customer(at: number, o: { card?: string | null; plan?: string; simulated?: boolean; incomplete?: boolean } = {}) {
  const u = await createUser(t.db, { role: 'subscriber' });
  if (o.simulated) await t.db.query(sql`UPDATE users SET simulated = true WHERE id = ${u.id}`);
  const card = o.card === undefined ? GOOD : o.card;
  if (card) {
    const a = await gw.attachCard({ number: card, expMonth: 12, expYear: 2040, cvc: '123' });
    if (!a.ok) throw new Error(a.message);
    await saveCard(t.db, u.id, { gateway: 'test', token: a.token, brand: a.brand, last4: a.last4, expMonth: 12, expYear: 2040 }, new Date(at));
  }
  const subId = await t.db.tx(async (q) => {
    const tr = await openLive(q, { userId: u.id, planId: plans.byCode(o.plan ?? 'standard')!.id, at: new Date(at) }, plans);
    await applyLive(q, tr.sub.id, { type: 'initial_charge', at, attempt: 1, outcome: o.incomplete ? { ok: false, reason: 'card_declined' } : { ok: true } }, plans);
    return tr.sub.id;
  });
  return { userId: u.id, subId };
}

const sub = (id: number) => t.db.one<any>(sql`SELECT * FROM subscriptions WHERE id = ${id}`);
const pays = (id: number) => t.db.query<any>(sql`SELECT * FROM payments WHERE subscription_id = ${id} ORDER BY created_at, id`);
const evs = (id: number) => t.db.query<any>(sql`SELECT type, at FROM subscription_events WHERE subscription_id = ${id} ORDER BY at, id`)
  .then((r) => r.map((e) => e.type));
const iso = (ms: number) => new Date(ms).toISOString();
const run = (kind: StepKind, at: number, o: Partial<Parameters<typeof runBillingSteps>[3]> = {}) =>
  runBillingSteps(t.db, kind, new Date(at), { gateway: gw, ...o });
async function allJobs(at: number) {
  for (const k of ['renewal', 'retry', 'expiry'] as const) await run(k, at);
}

test('the registry names the billing jobs billing.* with valid schedules', () => {
  const names = scheduledJobs({ catalog: { martOrder: [], marts: new Map() } as any, log: () => {}, config: defaultConfig({ martWorkMem: '64MB' }), gateway: gw })
    .map((j) => j.name).filter((n) => n.startsWith('billing.'));
  assert.equal(names.sort(), ['billing.dunning', 'billing.expire-incomplete', 'billing.reconcile-pending', 'billing.renewals', 'billing.requests-sweep']);
});

test('renewal at period end, stamped at the period end; a second run changes nothing', async () => {
  const T = Date.UTC(2026, 0, 10, 9, 30);
  const a = await customer(T);
  const end = addMonthsAnchored(T, 1);
  let r = await run('renewal', end - 1);
  assert.is((await sub(a.subId)).current_period_start.getTime(), T, 'nothing is due before the period end');
  r = await run('renewal', end + 5 * 3_600_000);
  assert.ok(r.outcomes.renewed >= 1);
  const s = await sub(a.subId);
  assert.equal([s.status, iso(s.current_period_start.getTime()), iso(s.current_period_end.getTime())], ['active', iso(end), iso(addMonthsAnchored(T, 2))]);
  const ps = await pays(a.subId);
  assert.equal(ps.map((p) => [p.kind, p.attempt, p.status, p.created_at.getTime()]), [['initial', 1, 'succeeded', T], ['renewal', 1, 'succeeded', end]]);
  assert.equal(await evs(a.subId), ['created', 'activated', 'renewed']);
  await run('renewal', end + 6 * 3_600_000);
  assert.is((await pays(a.subId)).length, 2);
});

test('dunning: a failing card is retried on days 1, 3, 7, 14 at those instants, then canceled (involuntary)', async () => {
  const T = Date.UTC(2026, 1, 3, 12);
  const a = await customer(T, { card: OFF_SESSION_FAILS });
  const end = addMonthsAnchored(T, 1);
  await allJobs(end);
  assert.is((await sub(a.subId)).status, 'past_due');
  for (const [i, d] of RETRY_DAYS.entries()) {
    await allJobs(end + d * DAY_MS - 1);
    assert.is((await pays(a.subId)).length, 2 + i, `retry ${i + 2} not before day ${d}`);
    await allJobs(end + d * DAY_MS + 3_600_000);
    assert.is((await pays(a.subId)).length, 3 + i);
  }
  const ps = (await pays(a.subId)).filter((p) => p.kind === 'renewal');
  assert.equal(ps.map((p) => [p.attempt, p.status, p.created_at.getTime() - end]), [[1, 'failed', 0], ...RETRY_DAYS.map((d, i) => [i + 2, 'failed', d * DAY_MS])]);
  const s = await sub(a.subId);
  assert.equal([s.status, s.end_reason, s.ended_at.getTime()], ['canceled', 'involuntary', end + 14 * DAY_MS]);
  assert.equal(await evs(a.subId), ['created', 'activated', 'payment_failed', 'past_due', 'payment_failed', 'payment_failed', 'payment_failed', 'payment_failed', 'canceled']);
});

test('a retry that succeeds recovers; a customer without a card goes past_due (no_payment_method)', async () => {
  const T = Date.UTC(2026, 1, 5, 8);
  const a = await customer(T, { card: OFF_SESSION_FAILS });
  const b = await customer(T, { card: null });
  const end = addMonthsAnchored(T, 1);
  await allJobs(end + 1000);
  // the customer adds a good card: the next retry (day 1) succeeds
  const good = await gw.attachCard({ number: GOOD, expMonth: 1, expYear: 2041, cvc: '123' });
  if (!good.ok) throw new Error();
  await saveCard(t.db, a.userId, { gateway: 'test', token: good.token, brand: good.brand, last4: good.last4, expMonth: 1, expYear: 2041 }, new Date(end));
  await allJobs(end + DAY_MS + 1000);
  const s = await sub(a.subId);
  assert.is(s.status, 'active');
  assert.equal((await evs(a.subId)).slice(-1), ['recovered']);
  const nb = (await pays(b.subId)).filter((p) => p.kind === 'renewal');
  assert.equal(nb.map((p) => [p.attempt, p.status, p.failure_reason]), [[1, 'failed', 'no_payment_method'], [2, 'failed', 'no_payment_method']]);
  assert.is((await sub(b.subId)).status, 'past_due');
});

test('cancel at period end and a scheduled downgrade take effect at the period end; incomplete ones expire after 23 h', async () => {
  const T = Date.UTC(2026, 2, 1, 10);
  const c = await customer(T);
  const d = await customer(T, { plan: 'premium' });
  const e = await customer(T, { incomplete: true, card: DECLINE });
  await t.db.tx((q) => applyLive(q, c.subId, { type: 'request_cancel', at: T + DAY_MS }));
  await t.db.tx((q) => applyLive(q, d.subId, { type: 'schedule_downgrade', at: T + DAY_MS, toPlanId: plans.byCode('standard')!.id }));
  await allJobs(T + INCOMPLETE_EXPIRES_MS - 1);
  assert.is((await sub(e.subId)).status, 'incomplete');
  await allJobs(T + INCOMPLETE_EXPIRES_MS + 600_000);
  const se = await sub(e.subId);
  assert.equal([se.status, se.end_reason, se.ended_at.getTime()], ['canceled', 'expired', T + INCOMPLETE_EXPIRES_MS]);
  const end = addMonthsAnchored(T, 1);
  await allJobs(end + 60_000);
  const sc = await sub(c.subId);
  assert.equal([sc.status, sc.end_reason, sc.ended_at.getTime()], ['canceled', 'voluntary', end]);
  assert.is((await pays(c.subId)).length, 1, 'a cancel at period end charges nothing');
  const sd = await sub(d.subId);
  assert.equal([sd.status, sd.plan_id, sd.pending_plan_id], ['active', plans.byCode('standard')!.id, null]);
  assert.equal((await pays(d.subId)).map((p) => p.amount_cents), [plans.byCode('premium')!.priceCents, plans.byCode('standard')!.priceCents]);
  assert.equal(await evs(d.subId), ['created', 'activated', 'downgrade_scheduled', 'plan_changed', 'renewed']);
});

test('catch-up after three days down: every renewal and retry once, in due order, at its due instant; closed months bump history_epoch', async () => {
  // period ends from Mar 30 to Apr 2 (a month boundary inside the downtime); the server is back on Apr 2, 12:00
  const starts = [Date.UTC(2026, 1, 28, 18), Date.UTC(2026, 2, 1, 6), Date.UTC(2026, 2, 1, 23), Date.UTC(2026, 1, 28, 6)];
  const ids: number[] = [];
  for (const [i, s] of starts.entries()) ids.push((await customer(s, { card: i === 1 ? OFF_SESSION_FAILS : GOOD })).subId);
  const back = Date.UTC(2026, 3, 2, 12);
  const epoch0 = (await t.db.one<any>(sql`SELECT epoch FROM history_epoch`))!.epoch;
  const order: number[] = [];
  for (const k of ['renewal', 'retry', 'expiry'] as const) await run(k, back, { concurrency: 1, onStep: (s) => { if (ids.includes(s.subscriptionId)) order.push(s.subscriptionId); } });
  const dues = await Promise.all(ids.map(async (id) => (await pays(id)).filter((p) => p.kind === 'renewal')));
  // sub 1 failed its renewal and was retried on day 1 (still in the downtime); the others renewed once
  for (const [i, ps] of dues.entries()) {
    const end = (await t.db.one<any>(sql`SELECT period_end FROM payments WHERE subscription_id = ${ids[i]} AND kind = 'initial'`))!.period_end.getTime();
    assert.is(ps[0].created_at.getTime(), end, `sub ${i}: stamped at its period end`);
    assert.equal(ps.map((p) => p.attempt), i === 1 ? [1, 2] : [1]);
    if (i === 1) assert.is(ps[1].created_at.getTime(), end + DAY_MS);
  }
  // renewals in due order (Mar 28+1m … ), then the retry
  const ends = await Promise.all(ids.map(async (id) => (await t.db.one<any>(sql`SELECT period_end FROM payments WHERE subscription_id = ${id} AND kind = 'initial'`))!.period_end.getTime()));
  const byDue = [...ids].sort((a, b) => ends[ids.indexOf(a)] - ends[ids.indexOf(b)]);
  assert.equal(order, [...byDue, ids[1]]);
  assert.ok((await t.db.one<any>(sql`SELECT epoch FROM history_epoch`))!.epoch > epoch0, 'rows dated in March (closed) bumped history_epoch');
  // running again finds nothing
  const again = await run('renewal', back);
  const retryAgain = await run('retry', back);
  assert.ok(!again.outcomes.renewed && !retryAgain.outcomes.retry_failed && !retryAgain.outcomes.recovered);
  for (const id of ids) assert.is((await pays(id)).length, id === ids[1] ? 3 : 2);
});

async function dueBatch(n: number, at: number, o: { simulated?: boolean; card?: string } = {}): Promise<number[]> {
  // n subscriptions whose period ends at `at + i seconds`: built in bulk (users, cards, subscriptions, first payments)
  const ids = await t.db.tx(async (q) => {
    const users = await q.query<{ id: number }>(sql`INSERT INTO users (email, display_name, role, simulated)
      SELECT 'bulk-' || ${String(at)} || '-' || i || '@test.example', 'Bulk ' || i, 'subscriber', ${o.simulated ?? false}
      FROM generate_series(1, ${n}) i RETURNING id`);
    const out: number[] = [];
    for (const [i, u] of users.entries()) {
      const created = addMonthsAnchored(at + i * 1000, -1);
      const tr = await openLive(q, { userId: u.id, planId: plans.byCode('standard')!.id, at: new Date(created) }, plans);
      await applyLive(q, tr.sub.id, { type: 'initial_charge', at: created, attempt: 1, outcome: { ok: true } }, plans);
      out.push(tr.sub.id);
    }
    return out;
  });
  if (!o.simulated) {
    const a = await gw.attachCard({ number: o.card ?? GOOD, expMonth: 12, expYear: 2040, cvc: '123' });
    if (!a.ok) throw new Error();
    await t.db.query(sql`INSERT INTO payment_methods (user_id, gateway, gateway_token, brand, last4, exp_month, exp_year, updated_at)
      SELECT user_id, 'test', ${a.token}, 'visa', '4242', 12, 2040, now() FROM subscriptions WHERE id = ANY(${ids}::bigint[])`);
  }
  return ids;
}

async function exactlyOnce(ids: number[], label: string) {
  const rows = await t.db.query<any>(sql`SELECT s.id, count(p.*) FILTER (WHERE p.kind = 'renewal') AS renewals,
      count(DISTINCT p.idempotency_key) FILTER (WHERE p.kind = 'renewal') AS keys,
      (SELECT count(*) FROM subscription_events e WHERE e.subscription_id = s.id AND e.type = 'renewed') AS renewed,
      (SELECT count(*) FROM test_gateway_charges c JOIN payments p2 ON p2.idempotency_key = c.idempotency_key
        WHERE p2.subscription_id = s.id AND p2.kind = 'renewal') AS charged
    FROM subscriptions s LEFT JOIN payments p ON p.subscription_id = s.id WHERE s.id = ANY(${ids}::bigint[]) GROUP BY s.id`);
  const bad = rows.filter((r) => r.renewals !== 1 || r.keys !== 1 || r.renewed !== 1 || r.charged !== 1);
  assert.is(bad.length, 0, `${label}: ${JSON.stringify(bad.slice(0, 3))}`);
  assert.is(rows.length, ids.length);
  const pending = await t.db.one<any>(sql`SELECT count(*) AS n FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND status = 'pending'`);
  assert.is(pending!.n, 0);
}

test('two runners at once (two pools, the same job and tick): each renewal once, charged once', async () => {
  const at = Date.UTC(2025, 8, 10, 4); // the bulk tests go back in time, so no earlier test's subscription is due in theirs
  const ids = await dueBatch(120, at);
  const now = new Date(at + 200_000);
  const pools = [createDb(t.url, { max: 5, onError: () => {} }), createDb(t.url, { max: 5, onError: () => {} })];
  try {
    // twelve batches of 10: a runner takes two at a time (lanes), so the other finds some left even when one is quicker
    const results = await Promise.all(pools.map((db) => runBillingSteps(db, 'renewal', now, { gateway: createTestGateway(db), batchSize: 10 })));
    assert.is(results[0].processed + results[1].processed, 120, JSON.stringify(results));
    assert.is((results[0].outcomes.renewed ?? 0) + (results[1].outcomes.renewed ?? 0), 120);
    assert.ok(results[0].processed > 0 && results[1].processed > 0, `both runners worked: ${JSON.stringify(results)}`);
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  await exactlyOnce(ids, 'two runners');
});

test('kill -9 during a renewal batch, then run again (and reconcile): each renewal exactly once', async () => {
  const at = Date.UTC(2025, 6, 10, 4);
  const ids = await dueBatch(300, at);
  const now = at + 400_000;
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/billing-jobs-child.ts', t.url, String(now)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let steps = 0;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for await (const line of lines) {
    if (line.startsWith('step ') && ++steps === 60) { child.kill('SIGKILL'); break; }
  }
  assert.is(await exited, 'SIGKILL');
  const done = (await t.db.one<any>(sql`SELECT count(*) AS n FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND kind = 'renewal'`))!.n;
  assert.ok(done >= 60 && done < 300, `killed mid-batch (${done} of 300 written)`);
  // a pending payment left by the kill is settled by the reconciler; the job does the rest
  await reconcilePending(t.db, gw, new Date(now + 120_000), { olderThanMs: 0 });
  const r = await runBillingSteps(t.db, 'renewal', new Date(now + 120_000), { gateway: gw });
  assert.ok(r.processed > 0 && r.processed <= 300 - 59);
  await exactlyOnce(ids, 'after kill -9');
});

test('gateway outage: the batch stops, subscriptions stay as they are, the job backs off; reconciled later, then it carries on', async () => {
  const at = Date.UTC(2025, 4, 10, 4);
  const ids = await dueBatch(5, at);
  const before = await t.db.query<any>(sql`SELECT id, status, current_period_end FROM subscriptions WHERE id = ANY(${ids}::bigint[]) ORDER BY id`);
  gw.injectFaults('outage', 1);
  const now = at + 10_000;
  const r1 = await run('renewal', now, { concurrency: 1 });
  assert.match(r1.outage ?? '', /unavailable/);
  const after = await t.db.query<any>(sql`SELECT id, status, current_period_end FROM subscriptions WHERE id = ANY(${ids}::bigint[]) ORDER BY id`);
  assert.equal(after, before, 'no subscription changed');
  // the batch's charges stay pending (the first got an error, the others were not sent): the reconciler's work
  const pending = await t.db.query<any>(sql`SELECT * FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND status = 'pending' ORDER BY id`);
  assert.is(pending.length, 5);
  assert.is((await t.db.one<any>(sql`SELECT count(*) AS n FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND status = 'failed'`))!.n, 0);
  const r2 = await run('renewal', now + 30_000);
  assert.ok(r2.backedOffUntil, 'backs off');
  assert.is(r2.processed, 0);
  // while the gateway is still down, the reconciler leaves them pending (an error is the gateway's trouble, not a decline)
  const reconcile = scheduledJobs({ catalog: { martOrder: [], marts: new Map() } as any, log: () => {}, config: { martWorkMem: '64MB' } as any, gateway: gw })
    .find((j) => j.name === 'billing.reconcile-pending')!;
  gw.injectFaults('outage', 5);
  await reconcile.run(t.db, new Date(now + 61_000));
  assert.is((await t.db.one<any>(sql`SELECT count(*) AS n FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND status = 'pending'`))!.n, 5);
  // the gateway is back: the reconciler settles each at its due instant; the next run finds nothing left and stops backing off
  await reconcile.run(t.db, new Date(now + 130_000));
  const settled = await t.db.query<any>(sql`SELECT * FROM payments WHERE id = ANY(${pending.map((p) => p.id)}::bigint[]) ORDER BY id`);
  assert.equal(settled.map((p) => [p.status, p.created_at.getTime()]), pending.map((p) => ['succeeded', p.created_at.getTime()]));
  const r3 = await run('renewal', now + 130_000);
  assert.is(r3.backedOffUntil, undefined);
  assert.is(r3.outage, undefined);
  await exactlyOnce(ids, 'after an outage');
  assert.is((await t.db.one<any>(sql`SELECT count(*) AS n FROM billing_job_backoff`))!.n, 0);
});

test('simulated customers (no card) renew through their simulated payment method at the model\'s rates, deterministically', async () => {
  const model = await loadSimulationModel(t.db);
  // the simulator's defaults (etl/profiles/default.json), whatever they are
  const p = model.renewalFailureRate, q = 1 - Math.pow(1 - model.retrySuccess, 4); // four retries
  assert.ok(p > 0 && p < 1 && q > 0 && q < 1, JSON.stringify(model));
  const within = (x: number, expected: number, n: number) => Math.abs(x - expected) < 4 * Math.sqrt(expected * (1 - expected) / n);
  assert.equal(simulatedAnswer(model, 'sub:1:period:2026-01-01T00:00:00.000Z:attempt:1'), simulatedAnswer(model, 'sub:1:period:2026-01-01T00:00:00.000Z:attempt:1'));
  const at = Date.UTC(2025, 2, 10, 4);
  const ids = await dueBatch(600, at, { simulated: true });
  await run('renewal', at + 700_000, { concurrency: 4 });
  const r = await t.db.one<any>(sql`SELECT count(*) AS n, count(*) FILTER (WHERE status = 'failed') AS failed,
      count(*) FILTER (WHERE failure_reason = 'no_payment_method') AS nopm
    FROM payments WHERE subscription_id = ANY(${ids}::bigint[]) AND kind = 'renewal'`);
  assert.is(r!.n, 600);
  assert.is(r!.nopm, 0, 'no failure for want of a payment method');
  const rate = r!.failed / 600;
  assert.ok(within(rate, p, 600), `first-attempt failure rate ${rate} ≈ ${p}`);
  // the retries over 14 days recover about that share of them
  for (const d of RETRY_DAYS) await run('retry', at + d * DAY_MS + 700_000);
  const rec = await t.db.one<any>(sql`SELECT count(*) FILTER (WHERE status = 'active') AS active, count(*) FILTER (WHERE status = 'canceled') AS canceled
    FROM subscriptions WHERE id = ANY(${ids}::bigint[])`);
  assert.is(rec!.active + rec!.canceled, 600);
  const recovery = 1 - rec!.canceled / r!.failed;
  assert.ok(within(recovery, q, r!.failed), `recovery ${recovery} ≈ ${q} (of ${r!.failed})`);
  // the simulator's --reset still removes simulated customers, now with the charge intents the jobs wrote for them
  assert.ok((await t.db.one<any>(sql`SELECT count(*) AS n FROM payment_charge_intents i JOIN users u ON u.id = i.user_id WHERE u.simulated`))!.n >= 600);
  const removed = await t.db.tx((q) => removeSimulated(q));
  assert.ok(removed.users >= 600 && removed.payments >= 1200);
});

test.run();
