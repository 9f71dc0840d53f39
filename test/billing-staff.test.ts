// The staff side of billing (README "Billing jobs and the staff side"): /admin/subscribers/:id (timeline, payments, a refund through the gateway,
// audited; cancel on the customer's behalf; managers read only), the expiry-tracking reports (renewing or ending soon,
// past due with the next retry, expired incomplete), and a live signup, charge, renewal and refund reaching the
// reports after the next incremental refresh of the marts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { createTestGateway, type TestGateway } from '../server/billing/gateway.ts';
import { applyLive, cardOnFile, chargeLive, loadPlans, openLive, saveCard, type Plans } from '../server/billing/store.ts';
import { addMonthsAnchored, DAY_MS } from '../server/billing/machine.ts';
import { runBillingSteps, INCOMPLETE_EXPIRES_MS } from '../server/billing/jobs.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, type Catalog } from '../server/reports/engine.ts';

const t = useDatabase(test);
let gw: TestGateway;
let plans: Plans;
let clock = Date.now();
const now = () => new Date(clock);
let app: ReturnType<typeof createApp>;
const key = () => randomBytes(16).toString('hex');
const text = async (res: Response) => (await res.text()).replace(/\s+/g, ' ');

test.before(async () => {
  gw = createTestGateway(t.db);
  plans = await loadPlans(t.db);
  app = createApp({ db: t.db, now, gateway: gw, log: () => {} });
});

async function customer(at: number, o: { card?: string | null; plan?: string; incomplete?: boolean } = {}) {
  const u = await createUser(t.db, { role: 'subscriber' });
  const card = o.card === undefined ? '4242424242424242' : o.card;
  if (card) {
    const a = await gw.attachCard({ number: card, expMonth: 12, expYear: 2040, cvc: '123' });
    if (!a.ok) throw new Error(a.message);
    await saveCard(t.db, u.id, { gateway: 'test', token: a.token, brand: a.brand, last4: a.last4, expMonth: 12, expYear: 2040 }, new Date(at));
  }
  const subId = await t.db.tx(async (q) => (await openLive(q, { userId: u.id, planId: plans.byCode(o.plan ?? 'standard')!.id, at: new Date(at) }, plans)).sub.id);
  // the first payment through the gateway (so it can be refunded there), or declined
  if (card && !o.incomplete) await chargeLive(t.db, gw, subId, () => ({ type: 'initial_charge', at, attempt: 1 }), { token: (await cardOnFile(t.db, u.id))!.token, offSession: false });
  else await t.db.tx((q) => applyLive(q, subId, { type: 'initial_charge', at, attempt: 1, outcome: o.incomplete ? { ok: false, reason: 'card_declined' } : { ok: true } }, plans));
  return { ...u, subId };
}

test('admin: timeline and payments; a partial refund goes through the gateway once, is recorded and audited; managers only read', async () => {
  const T = Date.UTC(2026, 3, 3, 10);
  clock = T + 2 * DAY_MS;
  const c = await customer(T, { plan: 'premium' });
  const admin = await createUser(t.db, { role: 'admin' });
  const manager = await createUser(t.db, { role: 'manager' });
  const aCookie = await sessionCookie(t.db, admin.id, { now: now() });
  const mCookie = await sessionCookie(t.db, manager.id, { now: now() });
  let res = await authedRequest(app, aCookie, `/admin/subscribers/${c.id}`);
  assert.is(res.status, 200);
  let body = await text(res);
  for (const s of ['created', 'activated', 'Premium', '$24.99', 'visa ending 4242', 'Refund', 'Cancel at period end']) assert.ok(body.includes(s), s);
  const payment = (await t.db.one<any>(sql`SELECT * FROM payments WHERE subscription_id = ${c.subId}`))!;
  // the user page links here
  assert.match(await text(await authedRequest(app, aCookie, `/admin/users/${c.id}`)), new RegExp(`href="/admin/subscribers/${c.id}"`));
  // managers read: the page without forms; posting is refused
  body = await text(await authedRequest(app, mCookie, `/admin/subscribers/${c.id}`));
  assert.ok(body.includes('activated') && !body.includes('Refund</button>') && !body.includes('/cancel"'));
  res = await authedRequest(app, mCookie, `/admin/subscribers/${c.id}/refund`, { method: 'POST', body: { payment_id: String(payment.id), amount: '1.00', idempotency_key: key() } });
  assert.is(res.status, 403);
  // bad amounts change nothing
  res = await authedRequest(app, aCookie, `/admin/subscribers/${c.id}/refund`, { method: 'POST', body: { payment_id: String(payment.id), amount: '30.00', idempotency_key: key() } });
  assert.is(res.headers.get('location'), `/admin/subscribers/${c.id}?error=amount`);
  // a partial refund, submitted twice with the same key (double click): one refund
  const k = key();
  const posts = await Promise.all([1, 2].map(() => authedRequest(app, aCookie, `/admin/subscribers/${c.id}/refund`,
    { method: 'POST', body: { payment_id: String(payment.id), amount: '10.50', idempotency_key: k } })));
  assert.equal(posts.map((r) => [r.status, r.headers.get('location')]), [[303, `/admin/subscribers/${c.id}?done=refunded`], [303, `/admin/subscribers/${c.id}?done=refunded`]]);
  const after = (await t.db.one<any>(sql`SELECT * FROM payments WHERE id = ${payment.id}`))!;
  assert.equal([after.status, after.refund_cents, after.refunded_at.getTime()], ['refunded', 1050, clock]);
  const charges = await t.db.query<any>(sql`SELECT * FROM test_gateway_charges WHERE idempotency_key = ${`refund:${payment.idempotency_key}`}`);
  assert.equal(charges.map((x) => [x.operation, x.amount_cents, x.status]), [['refund', 1050, 'succeeded']], 'refunded once at the gateway');
  const audit = await t.db.query<any>(sql`SELECT * FROM audit_log WHERE action = 'billing.refund' AND target_id = ${String(payment.id)}`);
  assert.is(audit.length, 1);
  assert.is(audit[0].actor_id, admin.id);
  assert.is(audit[0].after.refund_cents, 1050);
  assert.ok((await t.db.one(sql`SELECT 1 FROM subscription_events WHERE subscription_id = ${c.subId} AND type = 'refunded'`)));
  body = await text(await authedRequest(app, aCookie, `/admin/subscribers/${c.id}?done=refunded`));
  assert.match(body, /refunded \$10\.50/);
  // a refunded payment cannot be refunded again
  res = await authedRequest(app, aCookie, `/admin/subscribers/${c.id}/refund`, { method: 'POST', body: { payment_id: String(payment.id), amount: '1.00', idempotency_key: key() } });
  assert.is(res.headers.get('location'), `/admin/subscribers/${c.id}?error=payment`);

  // cancel on the customer's behalf: at period end, audited; the renewal job then ends it
  res = await authedRequest(app, aCookie, `/admin/subscribers/${c.id}/cancel`, { method: 'POST', body: { idempotency_key: key() } });
  assert.is(res.headers.get('location'), `/admin/subscribers/${c.id}?done=canceled`);
  assert.is((await t.db.one<any>(sql`SELECT cancel_at_period_end FROM subscriptions WHERE id = ${c.subId}`))!.cancel_at_period_end, true);
  assert.is((await t.db.query(sql`SELECT 1 FROM audit_log WHERE action = 'billing.cancel' AND target_id = ${String(c.subId)}`)).length, 1);
  await runBillingSteps(t.db, 'renewal', new Date(addMonthsAnchored(T, 1) + 1000), { gateway: gw });
  const s = (await t.db.one<any>(sql`SELECT status, end_reason FROM subscriptions WHERE id = ${c.subId}`))!;
  assert.equal([s.status, s.end_reason], ['canceled', 'voluntary']);
  res = await authedRequest(app, aCookie, `/admin/subscribers/${c.id}/cancel`, { method: 'POST', body: { idempotency_key: key() } });
  assert.is(res.headers.get('location'), `/admin/subscribers/${c.id}?error=no-subscription`);
  assert.is((await authedRequest(app, aCookie, '/admin/subscribers/999999999')).status, 404);
});

test('expiry-tracking reports: renewing or ending in the next days, past due with the next retry and amount at risk, expired incomplete', async () => {
  clock = Date.now();
  const catalog = loadCatalog();
  const base = clock - addMonthsAnchored(clock, -1); // a month ago, so the period ends about now
  const renewing = await customer(clock - base + 3 * DAY_MS);            // period ends in 3 days
  const later = await customer(clock - base + 20 * DAY_MS, { plan: 'premium' }); // in 20 days
  const ending = await customer(clock - base + 5 * DAY_MS);
  await t.db.tx((q) => applyLive(q, ending.subId, { type: 'request_cancel', at: clock - DAY_MS }));
  const failing = await customer(clock - base - 2 * DAY_MS, { card: '4000000000000341' }); // due 2 days ago: fails, retried on day 1
  const inc = await customer(clock - INCOMPLETE_EXPIRES_MS - 3_600_000, { card: '4000000000000002', incomplete: true });
  for (const k of ['renewal', 'retry', 'expiry'] as const) await runBillingSteps(t.db, k, now(), { gateway: gw });
  const rows = async (id: string, q = '') => (await runReport(t.db, catalog, id, new URLSearchParams(q), { role: 'manager', now: now() })).rows;
  const mine = (r: any[], u: { id: number }) => r.filter((x) => x.subscriber === `/admin/subscribers/${u.id}`);
  const week = await rows('subscriptions_renewing');
  assert.is(mine(week, renewing).length, 1);
  assert.equal([mine(week, renewing)[0].action, mine(week, renewing)[0].amount], ['renews', 17.99]);
  assert.equal([mine(week, ending)[0].action, mine(week, ending)[0].amount], ['ends', 0]);
  assert.is(mine(week, later).length, 0, 'not within 7 days');
  assert.is(mine(await rows('subscriptions_renewing', 'days=30'), later).length, 1);
  const pd = mine(await rows('subscriptions_past_due'), failing);
  assert.is(pd.length, 1);
  assert.equal([pd[0].attempts, pd[0].last_reason, pd[0].amount_at_risk], [2, 'card_declined', 17.99]);
  const due = (await t.db.one<any>(sql`SELECT current_period_start FROM subscriptions WHERE id = ${failing.subId}`))!.current_period_start.getTime();
  assert.is(new Date(pd[0].next_retry).getTime(), due + 3 * DAY_MS, 'the next retry is day 3');
  const ex = mine(await rows('subscriptions_expired_incomplete'), inc);
  assert.equal([ex.length, ex[0]?.attempts, ex[0]?.last_reason], [1, 1, 'card_declined']);
  // the report page links each row to the subscriber page
  const admin = await createUser(t.db, { role: 'analyst' });
  const page = await text(await authedRequest(app, await sessionCookie(t.db, admin.id, { now: now() }), '/reports/subscriptions_past_due'));
  assert.match(page, new RegExp(`<a href="/admin/subscribers/${failing.id}">`));
});

test('a live signup, charge, refund and play show up in the reports after the next incremental refresh', async () => {
  clock = Date.now();
  const catalog: Catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const first = await refreshMarts(t.db, catalog);
  assert.ok(first.ran);
  const month = new Date(clock).toISOString().slice(0, 7);
  const cash = async () => {
    const r = (await runReport(t.db, catalog, 'net_cash_revenue', new URLSearchParams(`from=${month}&to=${month}`), { role: 'analyst', now: now() })).rows;
    return { collected: r.reduce((a, x) => a + Number(x.collected), 0), refunded: r.reduce((a, x) => a + Number(x.refunded), 0),
      charges: r.reduce((a, x) => a + x.charges, 0), refunds: r.reduce((a, x) => a + x.refunds, 0) };
  };
  const signups = async () => (await runReport(t.db, catalog, 'signups', new URLSearchParams(`from=${month}&to=${month}`), { role: 'analyst', now: now() }))
    .rows.reduce((a, x) => a + x.first_payments, 0);
  const plays = async () => (await runReport(t.db, catalog, 'most_watched_titles', new URLSearchParams(`from=${month}&to=${month}`), { role: 'analyst', now: now() }))
    .rows.filter((x) => x.show_id === 'live-play-1').map((x) => [x.plays, x.hours_watched]);
  const film = (await t.db.one<{ id: number }>(sql`INSERT INTO titles (show_id, type, title, release_year, rating, duration_minutes)
    VALUES ('live-play-1', 'Movie', 'A Film Played Live', 2021, 'PG', 120) RETURNING id`))!.id;
  const before = await cash(), signupsBefore = await signups();
  // a live signup paying by card through the checkout form
  const sub = await createUser(t.db, { role: 'subscriber' });
  const sc = await sessionCookie(t.db, sub.id, { now: now() });
  const res = await authedRequest(app, sc, '/subscribe', { method: 'POST', body: { plan: 'standard', card_number: '4242 4242 4242 4242', exp: '12/39', cvc: '123', idempotency_key: key() } });
  assert.is(res.status, 303);
  // a live play: an hour of the film, reported by the player's progress API
  const play = await authedRequest(app, sc, `/api/play/${film}/progress`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ position: 3600 }) });
  assert.is(play.status, 200, await play.clone().text());
  // a live refund of part of it, from the admin page
  const p = (await t.db.one<any>(sql`SELECT id FROM payments WHERE user_id = ${sub.id}`))!;
  const admin = await createUser(t.db, { role: 'admin' });
  clock += 60_000;
  const r2 = await authedRequest(app, await sessionCookie(t.db, admin.id, { now: now() }), `/admin/subscribers/${sub.id}/refund`,
    { method: 'POST', body: { payment_id: String(p.id), amount: '2.00', idempotency_key: key() } });
  assert.is(r2.headers.get('location'), `/admin/subscribers/${sub.id}?done=refunded`);
  // nothing shows before the refresh (the reports read the marts) …
  assert.equal(await cash(), before);
  assert.equal(await plays(), []);
  const again = await refreshMarts(t.db, catalog);
  const cashMart = again.results.find((r) => r.mart === 'mart_cash_monthly')!;
  assert.is(cashMart.mode, 'incremental', 'an incremental refresh');
  // … and everything after it
  const after = await cash();
  assert.is(Math.round((after.collected - before.collected) * 100), 1799);
  assert.is(Math.round((after.refunded - before.refunded) * 100), 200);
  assert.equal([after.charges - before.charges, after.refunds - before.refunds], [1, 1]);
  assert.is(await signups(), signupsBefore + 1, 'the signup\'s first payment');
  assert.equal(await plays(), [[1, 1]], 'the play: one play, an hour watched');
});

test.run();
