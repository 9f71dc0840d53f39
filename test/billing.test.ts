// The subscription state machine (server/billing/machine.ts) as plain functions: every transition, the rows it
// produces, idempotency (a replayed charge never charges twice) and the inputs a state must refuse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyInput, openSubscription, planBook, addMonthsAnchored, nextBoundary, prorationCents, chargeKey, BillingError,
  MAX_ATTEMPTS, RETRY_DAYS, DAY_MS, type Plan, type Subscription, type BillingInput, type Transition,
} from '../server/billing/machine.ts';

const ads: Plan = { id: 1, code: 'standard_with_ads', priceCents: 799, interval: 'month', monthlyCents: 799 };
const std: Plan = { id: 2, code: 'standard', priceCents: 1799, interval: 'month', monthlyCents: 1799 };
const prem: Plan = { id: 3, code: 'premium', priceCents: 2499, interval: 'month', monthlyCents: 2499 };
const annual: Plan = { id: 4, code: 'standard_annual', priceCents: 17999, interval: 'year', monthlyCents: 17999 / 12 };
const plans = planBook([ads, std, prem, annual]);
const T0 = Date.UTC(2026, 0, 31, 10, 0, 0); // Jan 31: month-end clamping matters
const ok = { ok: true } as const;
const fail = (reason = 'card_declined') => ({ ok: false as const, reason });

function open(plan = std, at = T0): Subscription {
  return openSubscription({ id: 7, userId: 3, plan, at }, plans).sub;
}
function active(plan = std): Subscription {
  return applyInput(open(plan), { type: 'initial_charge', at: T0, attempt: 1, outcome: ok }, plans).sub;
}
function run(sub: Subscription, ...inputs: BillingInput[]): { sub: Subscription; all: Transition[] } {
  const all: Transition[] = [];
  for (const i of inputs) { const tr = applyInput(sub, i, plans); all.push(tr); sub = tr.sub; }
  return { sub, all };
}
function throws(fn: () => unknown, pattern: RegExp) {
  try { fn(); } catch (e: any) { assert.instance(e, BillingError); assert.match(e.message, pattern); return; }
  assert.unreachable('accepted an input the state must refuse');
}

test('periods: anchored day of month, clamped to short months, contiguous', () => {
  assert.is(new Date(addMonthsAnchored(T0, 1)).toISOString(), '2026-02-28T10:00:00.000Z');
  assert.is(new Date(addMonthsAnchored(T0, 2)).toISOString(), '2026-03-31T10:00:00.000Z');
  assert.is(new Date(nextBoundary(T0, addMonthsAnchored(T0, 1), std)).toISOString(), '2026-03-31T10:00:00.000Z');
  assert.is(new Date(nextBoundary(T0, T0, annual)).toISOString(), '2027-01-31T10:00:00.000Z');
  let start = T0;
  for (let k = 0; k < 30; k++) { const end = nextBoundary(T0, start, std); assert.ok(end > start); assert.is(end, addMonthsAnchored(T0, k + 1)); start = end; }
});

test('signup: created (incomplete, MRR 0), then activated by the first payment', () => {
  const o = openSubscription({ id: 7, userId: 3, plan: std, at: T0 }, plans);
  assert.is(o.sub.status, 'incomplete');
  assert.equal(o.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents]), [['created', null, 'incomplete', 0]]);
  assert.is(o.sub.periodEnd, addMonthsAnchored(T0, 1));
  const a = applyInput(o.sub, { type: 'initial_charge', at: T0, attempt: 1, outcome: ok }, plans);
  assert.is(a.sub.status, 'active');
  assert.equal(a.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents]), [['activated', 'incomplete', 'active', 1799]]);
  assert.equal(a.payments.map((p) => [p.kind, p.attempt, p.amountCents, p.status, p.idempotencyKey]),
    [['initial', 1, 1799, 'succeeded', chargeKey(7, T0, 1)]]);
  assert.is(a.payments[0].settledAt, T0);
});

test('a failed first payment leaves the subscription incomplete (no contract event), a retry activates it, or it expires', () => {
  const failed = applyInput(open(), { type: 'initial_charge', at: T0, attempt: 1, outcome: fail('insufficient_funds') }, plans);
  assert.is(failed.sub.status, 'incomplete');
  assert.equal(failed.events, []);
  assert.equal(failed.payments.map((p) => [p.status, p.failureReason]), [['failed', 'insufficient_funds']]);
  const later = T0 + 5 * 3_600_000;
  const retried = applyInput(failed.sub, { type: 'initial_charge', at: later, attempt: 2, outcome: ok }, plans);
  assert.is(retried.sub.status, 'active');
  assert.is(retried.sub.periodStart, T0); // the cycle stays anchored at creation: periods stay contiguous
  assert.is(retried.payments[0].periodStart, failed.payments[0].periodStart);
  const expired = applyInput(failed.sub, { type: 'expire', at: T0 + 23 * 3_600_000 }, plans);
  assert.equal([expired.sub.status, expired.sub.endReason, expired.sub.endedAt], ['canceled', 'expired', T0 + 23 * 3_600_000]);
  assert.equal(expired.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents]), [['expired', 'incomplete', 'canceled', 0]]);
  throws(() => applyInput(active(), { type: 'expire', at: T0 + 1 }, plans), /only an incomplete one expires/);
});

test('renewal at period end: a new contiguous period and a renewal payment', () => {
  const s = active();
  const r = applyInput(s, { type: 'period_end', at: s.periodEnd, outcome: ok }, plans);
  assert.equal([r.sub.status, r.sub.periodStart, r.sub.periodEnd], ['active', s.periodEnd, addMonthsAnchored(T0, 2)]);
  assert.equal(r.events.map((e) => [e.type, e.mrrCents]), [['renewed', 1799]]);
  assert.equal(r.payments.map((p) => [p.kind, p.attempt, p.periodStart, p.periodEnd, p.status]), [['renewal', 1, s.periodEnd, addMonthsAnchored(T0, 2), 'succeeded']]);
  throws(() => applyInput(s, { type: 'period_end', at: s.periodEnd + 1, outcome: ok }, plans), /period end .* is/);
});

test('a failed renewal goes past_due (MRR unchanged) and retries on days 1, 3, 7, 14; a success recovers', () => {
  const s = active();
  const due = s.periodEnd;
  const f = applyInput(s, { type: 'period_end', at: due, outcome: fail() }, plans);
  assert.is(f.sub.status, 'past_due');
  assert.equal(f.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents]),
    [['payment_failed', 'active', 'active', 1799], ['past_due', 'active', 'past_due', 1799]]);
  assert.equal(f.payments.map((p) => [p.attempt, p.status, p.failureReason]), [[1, 'failed', 'card_declined']]);
  const { sub, all } = run(f.sub,
    { type: 'retry', at: due + RETRY_DAYS[0] * DAY_MS, attempt: 2, outcome: fail('expired_card') },
    { type: 'retry', at: due + RETRY_DAYS[1] * DAY_MS, attempt: 3, outcome: ok });
  assert.is(sub.status, 'active');
  assert.equal(all.flatMap((t) => t.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents])),
    [['payment_failed', 'past_due', 'past_due', 1799], ['recovered', 'past_due', 'active', 1799]]);
  assert.equal(all.flatMap((t) => t.payments.map((p) => [p.kind, p.attempt, p.periodStart, p.status])),
    [['renewal', 2, due, 'failed'], ['renewal', 3, due, 'succeeded']]);
  assert.is(sub.periodStart, due); // the period advanced at the due date; recovery does not move it
});

test('retries running out cancel the subscription: involuntary churn, MRR 0', () => {
  const s = active();
  const due = s.periodEnd;
  let sub = applyInput(s, { type: 'period_end', at: due, outcome: fail() }, plans).sub;
  const events: string[] = [];
  for (let n = 2; n <= MAX_ATTEMPTS; n++) {
    const tr = applyInput(sub, { type: 'retry', at: due + RETRY_DAYS[n - 2] * DAY_MS, attempt: n, outcome: fail() }, plans);
    sub = tr.sub;
    events.push(...tr.events.map((e) => `${e.type}:${e.toStatus}:${e.mrrCents}`));
  }
  assert.equal([sub.status, sub.endReason, sub.endedAt], ['canceled', 'involuntary', due + 14 * DAY_MS]);
  assert.equal(events.slice(-2), ['payment_failed:past_due:1799', 'canceled:canceled:0']);
  throws(() => applyInput(sub, { type: 'retry', at: due + 15 * DAY_MS, attempt: 6, outcome: ok }, plans), /canceled: no retry is due/);
});

test('the same payment attempt twice never charges twice', () => {
  const o = open();
  const first = applyInput(o, { type: 'initial_charge', at: T0, attempt: 1, outcome: fail() }, plans);
  const again = applyInput(first.sub, { type: 'initial_charge', at: T0 + 1000, attempt: 1, outcome: ok }, plans);
  assert.ok(again.duplicate);
  assert.equal([again.payments, again.events, again.sub], [[], [], first.sub]);

  const s = active();
  const renewed = applyInput(s, { type: 'period_end', at: s.periodEnd, outcome: ok }, plans);
  const replay = applyInput(renewed.sub, { type: 'period_end', at: s.periodEnd, outcome: ok }, plans);
  assert.ok(replay.duplicate);
  assert.is(replay.payments.length, 0);

  const pd = applyInput(s, { type: 'period_end', at: s.periodEnd, outcome: fail() }, plans).sub;
  const r2 = applyInput(pd, { type: 'retry', at: s.periodEnd + DAY_MS, attempt: 2, outcome: fail() }, plans);
  const r2again = applyInput(r2.sub, { type: 'retry', at: s.periodEnd + DAY_MS + 5, attempt: 2, outcome: ok }, plans);
  assert.ok(r2again.duplicate);
  assert.is(r2again.sub.status, 'past_due');
  throws(() => applyInput(r2.sub, { type: 'retry', at: s.periodEnd + 3 * DAY_MS, attempt: 4, outcome: ok }, plans), /out of order/);

  const mid = T0 + 10 * DAY_MS;
  const up = applyInput(s, { type: 'upgrade', at: mid, toPlanId: prem.id, attempt: 1, outcome: fail() }, plans);
  const upAgain = applyInput(up.sub, { type: 'upgrade', at: mid + 10, toPlanId: prem.id, attempt: 1, outcome: ok }, plans);
  assert.ok(upAgain.duplicate);
  assert.is(upAgain.sub.planId, std.id);
  const keys = [first, renewed, up].flatMap((t) => t.payments.map((p) => p.idempotencyKey));
  assert.is(new Set(keys).size, keys.length);
});

test('an upgrade applies immediately with a prorated charge; a failed one changes nothing', () => {
  const s = active(ads);
  const at = s.periodStart + Math.round((s.periodEnd - s.periodStart) / 2);
  const expected = prorationCents(ads, prem, s.periodStart, s.periodEnd, at);
  assert.is(expected, Math.round((2499 - 799) / 2));
  const u = applyInput(s, { type: 'upgrade', at, toPlanId: prem.id, attempt: 1, outcome: ok }, plans);
  assert.is(u.sub.planId, prem.id);
  assert.equal(u.events.map((e) => [e.type, e.mrrCents, e.data.from_plan_id, e.data.direction]), [['plan_changed', 2499, ads.id, 'up']]);
  assert.equal(u.payments.map((p) => [p.kind, p.amountCents, p.periodStart, p.periodEnd]), [['proration', expected, at, s.periodEnd]]);
  const f = applyInput(s, { type: 'upgrade', at, toPlanId: prem.id, attempt: 1, outcome: fail() }, plans);
  assert.is(f.sub.planId, ads.id);
  assert.equal(f.events.map((e) => [e.type, e.toStatus, e.mrrCents]), [['payment_failed', 'active', 799]]);
  throws(() => applyInput(s, { type: 'upgrade', at, toPlanId: ads.id, attempt: 1, outcome: ok }, plans), /not an upgrade/);
  const pd = applyInput(s, { type: 'period_end', at: s.periodEnd, outcome: fail() }, plans).sub;
  throws(() => applyInput(pd, { type: 'upgrade', at: s.periodEnd + 1, toPlanId: prem.id, attempt: 1, outcome: ok }, plans), /only an active subscription upgrades/);
});

test('a downgrade is scheduled and applies at period end, before the renewal at the new price', () => {
  const s = active(prem);
  const d = applyInput(s, { type: 'schedule_downgrade', at: T0 + DAY_MS, toPlanId: ads.id }, plans);
  assert.equal([d.sub.planId, d.sub.pendingPlanId], [prem.id, ads.id]);
  assert.equal(d.events.map((e) => [e.type, e.mrrCents]), [['downgrade_scheduled', 2499]]);
  assert.equal(d.payments, []);
  const r = applyInput(d.sub, { type: 'period_end', at: s.periodEnd, outcome: ok }, plans);
  assert.equal([r.sub.planId, r.sub.pendingPlanId], [ads.id, null]);
  assert.equal(r.events.map((e) => [e.type, e.mrrCents]), [['plan_changed', 799], ['renewed', 799]]);
  assert.is(r.events[0].data.direction, 'down');
  assert.equal(r.payments.map((p) => p.amountCents), [799]);
  throws(() => applyInput(s, { type: 'schedule_downgrade', at: T0 + 1, toPlanId: annual.id }, plans), /not a downgrade/);
});

test('cancel at period end: voluntary churn at the period end, no renewal charge; a revert keeps it going', () => {
  const s = active();
  const c = applyInput(s, { type: 'request_cancel', at: T0 + 3 * DAY_MS }, plans);
  assert.ok(c.sub.cancelAtPeriodEnd);
  assert.equal(c.events.map((e) => [e.type, e.toStatus, e.mrrCents]), [['cancel_requested', 'active', 1799]]);
  const end = applyInput(c.sub, { type: 'period_end', at: s.periodEnd, outcome: ok }, plans);
  assert.equal([end.sub.status, end.sub.endReason, end.sub.endedAt], ['canceled', 'voluntary', s.periodEnd]);
  assert.equal(end.payments, []);
  assert.equal(end.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents, e.data.reason]), [['canceled', 'active', 'canceled', 0, 'voluntary']]);
  const rv = run(c.sub, { type: 'revert_cancel', at: T0 + 4 * DAY_MS }, { type: 'period_end', at: s.periodEnd, outcome: ok });
  assert.is(rv.sub.status, 'active');
  assert.equal(rv.all.flatMap((t) => t.events.map((e) => e.type)), ['cancel_reverted', 'renewed']);
  // a pending downgrade is dropped by a cancel
  const dn = run(s, { type: 'schedule_downgrade', at: T0 + DAY_MS, toPlanId: ads.id }, { type: 'request_cancel', at: T0 + 2 * DAY_MS });
  assert.is(dn.sub.pendingPlanId, null);
  throws(() => applyInput(end.sub, { type: 'request_cancel', at: s.periodEnd + 1 }, plans), /nothing to cancel/);
  const after = applyInput(end.sub, { type: 'period_end', at: end.sub.periodEnd, outcome: ok }, plans); // the job runs again
  assert.ok(after.duplicate);
  assert.equal(after.payments, []);
});

test('a refund is cash only: the payment row is updated, status and MRR stay, and it happens once', () => {
  const a = applyInput(open(), { type: 'initial_charge', at: T0, attempt: 1, outcome: ok }, plans);
  const paid = a.payments[0];
  const r = applyInput(a.sub, { type: 'refund', at: T0 + DAY_MS, payment: paid, cents: 500 }, plans);
  assert.equal(r.payments.map((p) => [p.idempotencyKey, p.status, p.refundCents, p.refundedAt, p.amountCents]),
    [[paid.idempotencyKey, 'refunded', 500, T0 + DAY_MS, 1799]]);
  assert.equal(r.events.map((e) => [e.type, e.fromStatus, e.toStatus, e.mrrCents]), [['refunded', 'active', 'active', 1799]]);
  assert.equal(r.sub, a.sub);
  assert.ok(applyInput(r.sub, { type: 'refund', at: T0 + 2 * DAY_MS, payment: r.payments[0], cents: 500 }, plans).duplicate);
  throws(() => applyInput(a.sub, { type: 'refund', at: T0 + DAY_MS, payment: paid, cents: 1800 }, plans), /refund must be 1\.\.1799/);
  throws(() => applyInput(a.sub, { type: 'refund', at: T0 - 1, payment: paid, cents: 1 }, plans), /precedes/);
});

test('inputs are pure: the given state is never mutated', () => {
  const s = active();
  const frozen = JSON.stringify(s);
  applyInput(s, { type: 'period_end', at: s.periodEnd, outcome: fail() }, plans);
  applyInput(s, { type: 'request_cancel', at: T0 + 1 }, plans);
  applyInput(s, { type: 'upgrade', at: T0 + 1, toPlanId: prem.id, attempt: 1, outcome: ok }, plans);
  assert.is(JSON.stringify(s), frozen);
});

test.run();
