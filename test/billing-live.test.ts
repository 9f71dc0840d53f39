// Live billing through HTTP (server/billing/routes.ts, store.ts, gateway.ts) with an injected clock and the test
// gateway: every state-machine path a subscriber can take, the rows each writes, idempotent forms (sequential and
// concurrent repeats charge once), gateway timeouts left pending and reconciled once, card validation messages.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp, appDeps } from '../server/app.ts';
import { scheduledJobs } from '../server/jobs/registry.ts';
import { createTestGateway, validateCard, type TestGateway } from '../server/billing/gateway.ts';
import { chargeLive, cardOnFile, loadPlans, loadSubscription, reconcilePending, applyLive } from '../server/billing/store.ts';
import { prorationCents, addMonthsAnchored, DAY_MS } from '../server/billing/machine.ts';

const t = useDatabase(test);
const T0 = Date.UTC(2026, 0, 31, 15, 0, 0); // Jan 31: the next period ends Feb 28 (clamped)
let clock = T0;
const now = () => new Date(clock);
let gw: TestGateway;
let app: ReturnType<typeof createApp>;

const GOOD = '4242 4242 4242 4242', DECLINE = '4000 0000 0000 0002', NSF = '4000 0000 0000 9995', OFF_SESSION_FAILS = '4000 0000 0000 0341';
const key = () => randomBytes(16).toString('hex');

test.before(async () => {
  gw = createTestGateway(t.db);
  app = createApp({ db: t.db, now, gateway: gw, log: () => {} });
});

async function subscriber() {
  const u = await createUser(t.db, { role: 'subscriber' });
  return { ...u, cookie: () => sessionCookie(t.db, u.id, { now: now() }) };
}
type Sub = Awaited<ReturnType<typeof subscriber>>;
async function post(u: Sub, path: string, body: Record<string, string>) {
  return authedRequest(app, await u.cookie(), path, { method: 'POST', body });
}
async function get(u: Sub, path: string) {
  return authedRequest(app, await u.cookie(), path);
}
const subscribe = (u: Sub, card: string, plan = 'standard', k = key()) =>
  post(u, '/subscribe', { plan, card_number: card, exp: '12/30', cvc: '123', idempotency_key: k });
const subs = (userId: number) => t.db.query<any>(sql`SELECT * FROM subscriptions WHERE user_id = ${userId} ORDER BY id`);
const payments = (userId: number) => t.db.query<any>(sql`SELECT * FROM payments WHERE user_id = ${userId} ORDER BY id`);
const events = (subId: number) => t.db.query<any>(sql`SELECT type, from_status, to_status, plan_id, mrr_cents, data FROM subscription_events
  WHERE subscription_id = ${subId} ORDER BY at, id`).then((r) => r.map((e) => e.type));
const gatewayCharges = (key: string) => t.db.query<any>(sql`SELECT * FROM test_gateway_charges WHERE idempotency_key = ${key}`);
const text = async (res: Response) => (await res.text()).replace(/\s+/g, ' ');
const planId = async (code: string) => (await loadPlans(t.db)).byCode(code)!.id;

test('/plans compares the tiers from the plans table; anonymous visitors are asked to sign in', async () => {
  const res = await app.request('/plans');
  assert.is(res.status, 200);
  const body = await text(res);
  for (const s of ['Standard with ads', '$7.99 / month', 'Premium', '$24.99 / month', 'Ultra HD (4K)', 'With ads', 'No ads']) assert.ok(body.includes(s), s);
  assert.match(body, /Sign in to subscribe/);
  const u = await subscriber();
  const mine = await text(await get(u, '/plans?plan=premium'));
  assert.match(mine, /name="idempotency_key" value="[A-Za-z0-9_-]{16,}"/);
  assert.match(mine, /value="premium" checked/);
});

test('card checks: Luhn, expiry MM/YY not past, CVC 3-4 digits, each message naming its field; nothing is charged', async () => {
  const u = await subscriber();
  let res = await post(u, '/subscribe', { plan: 'standard', card_number: '4242 4242 4242 4241', exp: '13/30', cvc: '12', idempotency_key: key() });
  assert.is(res.status, 400);
  let body = await text(res);
  assert.match(body, /Card number: this number is not valid/);
  assert.match(body, /Expiry: the month must be 01 to 12/);
  assert.match(body, /CVC: 3 or 4 digits/);
  res = await post(u, '/subscribe', { plan: 'standard', card_number: GOOD, exp: '12/25', cvc: '1234', idempotency_key: key() });
  assert.is(res.status, 400);
  assert.match(await text(res), /Expiry: this card has expired/);
  res = await post(u, '/subscribe', { plan: 'gold', card_number: 'abcd', exp: '1225', cvc: '', idempotency_key: key() });
  body = await text(res);
  assert.match(body, /Plan: choose one of the plans/);
  assert.match(body, /Card number: use digits only/);
  assert.match(body, /Expiry: use the form MM\/YY/);
  assert.match(body, /CVC: enter the 3 or 4 digits/);
  assert.is((await subs(u.id)).length, 0);
  // the month of `now` is still valid (a card expires at the end of its month)
  assert.ok(validateCard({ card_number: GOOD, exp: '01/26', cvc: '123' }, now()).ok);
  assert.not.ok(validateCard({ card_number: GOOD, exp: '12/25', cvc: '123' }, now()).ok);
});

test('declined first charge: 402 with the gateway message, incomplete; another card: active, same period, next billing date shown', async () => {
  clock = T0;
  const u = await subscriber();
  let res = await subscribe(u, DECLINE);
  assert.is(res.status, 402);
  assert.match(await text(res), /Your card was declined/);
  let [s] = await subs(u.id);
  assert.is(s.status, 'incomplete');
  let [p] = await payments(u.id);
  assert.is(p.status, 'failed');
  assert.is(p.failure_reason, 'card_declined');
  assert.is(p.kind, 'initial');
  assert.is(p.attempt, 1);
  assert.match(await text(await get(u, '/account')), /Try another card/);

  res = await subscribe(u, NSF);
  assert.is(res.status, 402);
  assert.match(await text(res), /insufficient funds/);

  clock = T0 + 60_000;
  res = await subscribe(u, GOOD);
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/account?done=subscribed');
  [s] = await subs(u.id);
  assert.is(s.status, 'active');
  assert.is(s.current_period_start.getTime(), T0, 'the period stays anchored at creation');
  assert.is(s.current_period_end.toISOString(), '2026-02-28T15:00:00.000Z');
  const ps = await payments(u.id);
  assert.equal(ps.map((x) => [x.attempt, x.status, x.amount_cents]), [[1, 'failed', 1799], [2, 'failed', 1799], [3, 'succeeded', 1799]]);
  assert.equal(await events(s.id), ['created', 'activated']);
  const card = await cardOnFile(t.db, u.id);
  assert.equal([card?.brand, card?.last4, card?.expMonth, card?.expYear], ['visa', '4242', 12, 2030]);
  const page = await text(await get(u, '/account?done=subscribed'));
  assert.match(page, /your subscription is active/);
  assert.match(page, /id="sub-status">Active/);
  assert.match(page, /id="sub-next-date">2026-02-28/);
  assert.match(page, /id="sub-next-amount">\$17\.99/);
  assert.match(page, /Visa ending 4242, expires 12\/30/);
  // no card number beyond the last four digits is stored anywhere
  const stored = JSON.stringify(await t.db.query(sql`SELECT * FROM payment_methods`)) + JSON.stringify(await t.db.query(sql`SELECT * FROM test_gateway_cards`));
  assert.not.match(stored, /424242424242/);
});

test('a repeated form key charges once: sequential resubmit and concurrent duplicates return the first outcome', async () => {
  clock = T0;
  const u = await subscriber();
  const k = key();
  const first = await subscribe(u, GOOD, 'premium', k);
  assert.is(first.status, 303);
  const again = await subscribe(u, GOOD, 'premium', k);
  assert.is(again.status, 303);
  assert.is(again.headers.get('location'), first.headers.get('location'));

  const v = await subscriber();
  const k2 = key();
  const answers = await Promise.all([1, 2, 3, 4].map(() => subscribe(v, GOOD, 'standard_with_ads', k2)));
  assert.equal(answers.map((r) => r.status), [303, 303, 303, 303]);
  const ps = await payments(v.id);
  assert.is(ps.length, 1, 'one payment row');
  assert.is((await gatewayCharges(ps[0].idempotency_key)).length, 1);
  assert.is((await t.db.one<any>(sql`SELECT count(*) AS n FROM test_gateway_charges c JOIN payments p ON p.idempotency_key = c.idempotency_key
    WHERE p.user_id = ${v.id}`))!.n, 1, 'charged once at the gateway');
  assert.is((await subs(v.id)).length, 1);

  // a declined outcome repeats too (no second attempt is made under the same key)
  const w = await subscriber();
  const k3 = key();
  const [d1, d2] = await Promise.all([subscribe(w, DECLINE, 'standard', k3), subscribe(w, DECLINE, 'standard', k3)]);
  assert.equal([d1.status, d2.status], [402, 402]);
  assert.is((await payments(w.id)).length, 1);
});

test('concurrent upgrades charge one proration: the same key returns the first outcome, another key finds the plan changed', async () => {
  clock = T0;
  const u = await subscriber();
  await subscribe(u, GOOD, 'standard_with_ads');
  clock = T0 + 2 * DAY_MS;
  const k = key();
  const same = await Promise.all([1, 2, 3].map(() => post(u, '/account/upgrade', { plan: 'premium', idempotency_key: k })));
  assert.equal(same.map((r) => r.status), [303, 303, 303]);
  const other = await post(u, '/account/upgrade', { plan: 'premium', idempotency_key: key() });
  assert.is(other.status, 409, 'premium is no upgrade of premium');
  const prorations = (await payments(u.id)).filter((p) => p.kind === 'proration');
  assert.is(prorations.length, 1);
  assert.is((await gatewayCharges(prorations[0].idempotency_key)).length, 1);
  // a resubmitted cancel form is one cancel request
  const c = key();
  assert.equal((await Promise.all([post(u, '/account/cancel', { idempotency_key: c }), post(u, '/account/cancel', { idempotency_key: c })])).map((r) => r.status), [303, 303]);
  const [s] = await subs(u.id);
  assert.equal((await events(s.id)).filter((e) => e === 'cancel_requested').length, 1);
});

test('upgrade: the confirm page shows the prorated amount, the same amount is charged, the plan changes at once', async () => {
  clock = T0;
  const u = await subscriber();
  assert.is((await subscribe(u, GOOD, 'standard')).status, 303);
  clock = T0 + 10 * DAY_MS + 3_600_000;
  const [s] = await subs(u.id);
  const plans = await loadPlans(t.db);
  const expected = prorationCents(plans.byCode('standard')!, plans.byCode('premium')!, s.current_period_start.getTime(), s.current_period_end.getTime(), clock);
  assert.ok(expected > 0 && expected < 700);
  const account = await text(await get(u, '/account'));
  assert.match(account, /href="\/account\/upgrade\?plan=premium"/);
  const confirm = await text(await get(u, '/account/upgrade?plan=premium'));
  const shown = `$${(expected / 100).toFixed(2)}`;
  assert.ok(confirm.includes(`id="proration-amount"><strong>${shown}</strong>`), confirm);
  assert.ok(confirm.includes(`Pay ${shown} and upgrade`));
  const res = await post(u, '/account/upgrade', { plan: 'premium', idempotency_key: key() });
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/account?done=upgrade');
  const [after] = await subs(u.id);
  assert.is(after.plan_id, plans.byCode('premium')!.id);
  const proration = (await payments(u.id)).find((p) => p.kind === 'proration');
  assert.is(proration.amount_cents, expected);
  assert.is(proration.status, 'succeeded');
  assert.is((await gatewayCharges(proration.idempotency_key))[0].amount_cents, expected);
  assert.equal(await events(s.id), ['created', 'activated', 'plan_changed']);
  const page = await text(await get(u, '/account?done=upgrade'));
  assert.match(page, /Premium — \$24\.99/);
  assert.not.match(page, /Upgrade to/);
  // an upgrade to a cheaper plan is refused with a message
  assert.is((await get(u, '/account/upgrade?plan=standard')).status, 400);
});

test('downgrade applies at period end: the period_end input through the store charges the cheaper plan', async () => {
  clock = T0;
  const u = await subscriber();
  await subscribe(u, GOOD, 'premium');
  clock = T0 + 5 * DAY_MS;
  const res = await post(u, '/account/downgrade', { plan: 'standard', idempotency_key: key() });
  assert.is(res.status, 303);
  let [s] = await subs(u.id);
  assert.is(s.pending_plan_id, await planId('standard'));
  assert.is(s.plan_id, await planId('premium'), 'nothing changes before period end');
  const page = await text(await get(u, '/account?done=downgrade'));
  assert.match(page, /id="sub-next-amount">\$17\.99 \(Standard, from 2026-02-28\)/);

  clock = s.current_period_end.getTime() + 60_000; // the renewal job runs a minute after the period ended
  const card = (await cardOnFile(t.db, u.id))!;
  const r = await chargeLive(t.db, gw, s.id, (sub) => clock >= sub.periodEnd ? { type: 'period_end', at: sub.periodEnd } : null,
    { token: card.token, offSession: true });
  assert.is(r.kind, 'settled');
  [s] = await subs(u.id);
  assert.is(s.plan_id, await planId('standard'));
  assert.is(s.pending_plan_id, null);
  assert.is(s.status, 'active');
  assert.is(s.current_period_end.toISOString(), '2026-03-31T15:00:00.000Z');
  const renewal = (await payments(u.id)).at(-1);
  assert.equal([renewal.kind, renewal.amount_cents, renewal.status], ['renewal', 1799, 'succeeded']);
  assert.equal(await events(s.id), ['created', 'activated', 'downgrade_scheduled', 'plan_changed', 'renewed']);
  // the same period end again is a duplicate: nothing charged
  const again = await chargeLive(t.db, gw, s.id, () => ({ type: 'period_end', at: Date.UTC(2026, 1, 28, 15) }), { token: card.token, offSession: true });
  assert.is(again.kind, 'duplicate');
  assert.is((await payments(u.id)).length, 2);
});

test('cancel and resume, then cancel ends the subscription at period end; reactivation is a new subscription via /plans', async () => {
  clock = T0;
  const u = await subscriber();
  await subscribe(u, GOOD, 'standard');
  clock = T0 + DAY_MS;
  assert.is((await post(u, '/account/cancel', { idempotency_key: key() })).status, 303);
  let page = await text(await get(u, '/account?done=cancel'));
  assert.match(page, /id="sub-ends">2026-02-28 \(no further charges\)/);
  assert.match(page, /Resume subscription/);
  assert.is((await post(u, '/account/resume', { idempotency_key: key() })).status, 303);
  page = await text(await get(u, '/account?done=resume'));
  assert.match(page, /id="sub-next-date">2026-02-28/);
  assert.match(page, /Cancel at period end/);
  assert.is((await post(u, '/account/cancel', { idempotency_key: key() })).status, 303);
  let [s] = await subs(u.id);
  assert.is(s.cancel_at_period_end, true);

  clock = s.current_period_end.getTime();
  const r = await chargeLive(t.db, gw, s.id, (sub) => ({ type: 'period_end', at: sub.periodEnd }), { token: 'unused', offSession: true });
  assert.is(r.kind, 'applied', 'a period end that cancels charges nothing');
  [s] = await subs(u.id);
  assert.equal([s.status, s.end_reason], ['canceled', 'voluntary']);
  assert.equal(await events(s.id), ['created', 'activated', 'cancel_requested', 'cancel_reverted', 'cancel_requested', 'canceled']);
  page = await text(await get(u, '/account'));
  assert.match(page, /ended on 2026-02-28/);
  assert.match(page, /Subscribe again/);
  // account actions now have nothing to act on
  assert.is((await post(u, '/account/cancel', { idempotency_key: key() })).status, 409);

  clock += 3 * DAY_MS;
  assert.is((await subscribe(u, GOOD, 'premium')).status, 303);
  const all = await subs(u.id);
  assert.is(all.length, 2, 'a new row');
  assert.equal([all[1].status, all[1].plan_id, all[1].created_at.getTime()], ['active', await planId('premium'), clock]);
  assert.equal(await events(all[1].id), ['created', 'activated']);
});

test('a card that fails off-session: renewal past_due; a new card retries at once and recovers', async () => {
  clock = T0;
  const u = await subscriber();
  assert.is((await subscribe(u, OFF_SESSION_FAILS, 'standard')).status, 303, 'the first, on-session charge succeeds');
  let [s] = await subs(u.id);
  clock = s.current_period_end.getTime();
  const card = (await cardOnFile(t.db, u.id))!;
  const r = await chargeLive(t.db, gw, s.id, (sub) => ({ type: 'period_end', at: sub.periodEnd }), { token: card.token, offSession: true });
  assert.is(r.kind, 'settled');
  [s] = await subs(u.id);
  assert.is(s.status, 'past_due');
  let page = await text(await get(u, '/account'));
  assert.match(page, /id="sub-status">Past due/);
  assert.match(page, /Update your card/);
  assert.not.match(page, /Upgrade to/, 'no upgrade while a renewal is unpaid');
  clock += 2 * 3_600_000;
  const bad = await post(u, '/account/card', { card_number: DECLINE, exp: '10/29', cvc: '999', idempotency_key: key() });
  assert.is(bad.status, 402);
  assert.match(await text(bad), /declined/);
  assert.is((await cardOnFile(t.db, u.id))!.last4, '0341', 'a card that failed is not saved');
  const res = await post(u, '/account/card', { card_number: '5555 5555 5555 4444', exp: '10/29', cvc: '999', idempotency_key: key() });
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/account?done=card_recovered');
  [s] = await subs(u.id);
  assert.is(s.status, 'active');
  const ps = (await payments(u.id)).filter((p) => p.kind === 'renewal');
  assert.equal(ps.map((p) => [p.attempt, p.status]), [[1, 'failed'], [2, 'failed'], [3, 'succeeded']]);
  assert.equal(await events(s.id), ['created', 'activated', 'payment_failed', 'past_due', 'payment_failed', 'recovered']);
  page = await text(await get(u, '/account'));
  assert.match(page, /Mastercard ending 4444/);
  // the retry schedule's next attempt is derived from the rows: a dunning job would continue at attempt 4
  assert.is((await loadSubscription(t.db, s.id))!.dueAttempts, 0);
});

test('a gateway timeout leaves the payment pending; it is reconciled once (answer lost, or request never arrived)', async () => {
  clock = T0;
  const u = await subscriber();
  gw.injectFaults('lost_answer');
  let res = await subscribe(u, GOOD, 'standard');
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/account?done=pending');
  let [p] = await payments(u.id);
  assert.is(p.status, 'pending');
  assert.is(p.settled_at, null);
  assert.is((await subs(u.id))[0].status, 'incomplete');
  assert.is((await gatewayCharges(p.idempotency_key)).length, 1, 'the gateway did charge');
  // a second checkout while the first payment is pending charges nothing
  res = await subscribe(u, GOOD, 'standard');
  assert.is(res.status, 409);
  // nor does choosing another plan expire the subscription that payment decides
  res = await subscribe(u, GOOD, 'premium');
  assert.is(res.status, 409);
  assert.is((await subs(u.id)).length, 1);
  // the account page reconciles: the gateway's answer for the key settles it
  const page = await text(await get(u, '/account?done=pending'));
  assert.match(page, /id="sub-status">Active/);
  [p] = await payments(u.id);
  assert.is(p.status, 'succeeded');
  assert.is((await gatewayCharges(p.idempotency_key)).length, 1, 'charged once');
  assert.equal(await reconcilePending(t.db, gw, now()), { settled: 0, pending: 0 });

  const v = await subscriber();
  gw.injectFaults('unreachable');
  assert.is((await subscribe(v, GOOD, 'premium')).headers.get('location'), '/account?done=pending');
  [p] = await payments(v.id);
  assert.is(p.status, 'pending');
  assert.is((await gatewayCharges(p.idempotency_key)).length, 0);
  // the job leaves young pending payments to the request handling them
  assert.equal(await reconcilePending(t.db, gw, now(), { olderThanMs: 60_000 }), { settled: 0, pending: 0 });
  gw.injectFaults('unreachable');
  assert.equal(await reconcilePending(t.db, gw, new Date(clock + 120_000), { olderThanMs: 60_000 }), { settled: 0, pending: 1 });
  // the scheduled job (the Job interface of server/jobs) does the same
  const job = scheduledJobs(appDeps({ db: t.db, gateway: gw, now })).find((j) => j.name === 'billing.reconcile-pending')!;
  assert.equal(await job.run(t.db, new Date(clock + 180_000)), { settled: 1, pending: 0 });
  [p] = await payments(v.id);
  assert.is(p.status, 'succeeded');
  assert.is((await gatewayCharges(p.idempotency_key)).length, 1);
  assert.is((await subs(v.id))[0].status, 'active');
  assert.equal(await reconcilePending(t.db, gw, new Date(clock + 240_000)), { settled: 0, pending: 0 });
});

test('the test gateway\'s chargeMany answers each charge as charge() would, one ledger row per key; a fault stops the rest', async () => {
  const cards: Record<string, string> = {};
  for (const [name, number] of Object.entries({ GOOD, DECLINE, NSF, OFF_SESSION_FAILS })) {
    const r = await gw.attachCard({ number: number.replace(/ /g, ''), expMonth: 12, expYear: 2030, cvc: '123' });
    assert.ok(r.ok, name);
    cards[name] = (r as { token: string }).token;
  }
  cards.UNKNOWN = 'tok_test_never_issued';
  const req = (name: string, offSession: boolean) => ({ idempotencyKey: `many:${key()}`, token: cards[name]!, amountCents: 1299, currency: 'USD', offSession });
  const reqs = Object.keys(cards).flatMap((name) => [req(name, true), req(name, false)]);
  // one key charged already (by charge()): chargeMany answers what was recorded and writes nothing more for it
  const first = await gw.charge(reqs[0]!);
  const many = await gw.chargeMany!(reqs);
  assert.equal(many[0], first);
  for (const [i, r] of reqs.entries()) {
    const single = await gw.charge({ ...r, idempotencyKey: `single:${r.idempotencyKey}` });
    assert.equal(many[i], single, `${r.token} offSession=${r.offSession}`);
    assert.is((await gatewayCharges(r.idempotencyKey)).length, 1, 'one ledger row per key');
  }
  assert.equal(await gw.chargeMany!(reqs), many, 'the same keys again: the recorded answers');
  // a fault strikes the first charge and stops the sending: the rest answer timeout and record nothing
  gw.injectFaults('outage');
  const fresh = [req('GOOD', true), req('GOOD', true)];
  assert.equal((await gw.chargeMany!(fresh)).map((r) => r.status), ['error', 'timeout']);
  assert.is((await gatewayCharges(fresh[1]!.idempotencyKey)).length, 0);
  assert.equal((await gw.chargeMany!(fresh)).map((r) => r.status), ['succeeded', 'succeeded'], 'sent again later: charged');
});

test('receipts: own succeeded payments only, with the print stylesheet', async () => {
  clock = T0;
  const u = await subscriber();
  await subscribe(u, DECLINE, 'standard');
  await subscribe(u, GOOD, 'standard');
  const [failed, paid] = await payments(u.id);
  const res = await get(u, `/account/receipts/${paid.id}`);
  assert.is(res.status, 200);
  const body = await text(res);
  assert.match(body, /Receipt/);
  assert.match(body, /\$17\.99/);
  assert.match(body, /2026-01-31 – 2026-02-28/);
  assert.match(body, /rel="stylesheet"/);
  assert.is((await get(u, `/account/receipts/${failed.id}`)).status, 404);
  const other = await subscriber();
  assert.is((await get(other, `/account/receipts/${paid.id}`)).status, 404);
  assert.match(await text(await get(u, '/account')), new RegExp(`href="/account/receipts/${paid.id}"`));
});

test('live rows mean what simulated rows mean: MRR after each event is the plan\'s monthly price while active', async () => {
  clock = T0;
  const u = await subscriber();
  await subscribe(u, GOOD, 'standard_with_ads');
  const [s] = await subs(u.id);
  const rows = await t.db.query<any>(sql`SELECT type, mrr_cents FROM subscription_events WHERE subscription_id = ${s.id} ORDER BY at, id`);
  assert.equal(rows.map((r) => [r.type, r.mrr_cents]), [['created', 0], ['activated', 799]]);
  // a store step a state cannot take throws and writes nothing
  const err = await t.db.tx((q) => applyLive(q, s.id, { type: 'expire', at: clock })).then(() => null, (e) => e);
  assert.match(err?.message ?? '', /only an incomplete one expires/);
  assert.equal(await events(s.id), ['created', 'activated']);
  assert.is(addMonthsAnchored(T0, 1), s.current_period_end.getTime());
});

test.run();
