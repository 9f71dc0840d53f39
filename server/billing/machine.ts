// The subscription state machine of DESIGN.md as plain functions: (state, input) -> { state, events, payments }.
// No I/O and no clock: every input carries its instant (epoch ms) and, for charges, the outcome the payment provider
// reported. The business simulator drives these functions today; live billing (renewal and dunning jobs, the
// subscribe/upgrade/cancel endpoints) will drive the same functions, so simulated and live rows mean the same thing.
// The meaning of every row is the billing contract (see server/billing/README.md).

export type Status = 'incomplete' | 'active' | 'past_due' | 'canceled';
export type EndReason = 'voluntary' | 'involuntary' | 'expired';
export type EventType = 'created' | 'activated' | 'renewed' | 'payment_failed' | 'past_due' | 'recovered' | 'plan_changed'
  | 'downgrade_scheduled' | 'cancel_requested' | 'cancel_reverted' | 'canceled' | 'expired' | 'refunded';
export type PaymentKind = 'initial' | 'renewal' | 'proration';
export type PaymentStatus = 'pending' | 'succeeded' | 'failed' | 'refunded';

export interface Plan {
  id: number;
  code: string;
  priceCents: number;
  interval: 'month' | 'year';
  /** Monthly-normalized price (annual ÷ 12), exactly as plans.monthly_cents. */
  monthlyCents: number;
}

export interface Subscription {
  id: number;
  userId: number;
  planId: number;
  status: Status;
  createdAt: number;
  /** Start of the first period: every period boundary is this instant plus whole intervals (day-of-month clamped). */
  anchor: number;
  periodStart: number;
  periodEnd: number;
  cancelAtPeriodEnd: boolean;
  pendingPlanId: number | null;
  endedAt: number | null;
  endReason: EndReason | null;
  /** Attempts already made for the charge currently due (initial while incomplete, renewal while past_due). */
  dueAttempts: number;
  /** Idempotency keys charged in the current period: a replayed charge finds its key here and charges nothing. */
  periodKeys: string[];
}

export interface SubscriptionEvent {
  subscriptionId: number;
  userId: number;
  at: number;
  type: EventType;
  fromStatus: Status | null;
  toStatus: Status;
  planId: number;
  /** The subscription's MRR after the event: the plan's monthly price when active/past_due, else 0. */
  mrrCents: number;
  data: Record<string, unknown>;
}

export interface Payment {
  subscriptionId: number;
  userId: number;
  kind: PaymentKind;
  periodStart: number;
  periodEnd: number;
  attempt: number;
  amountCents: number;
  status: PaymentStatus;
  idempotencyKey: string;
  failureReason: string | null;
  createdAt: number;
  settledAt: number | null;
  refundedAt: number | null;
  refundCents: number | null;
}

/** What the payment provider answered for one charge attempt. */
export type ChargeOutcome = { ok: true } | { ok: false; reason: string };

export type BillingInput =
  /** A charge attempt for the first period (attempt 1 at signup, later attempts while incomplete). */
  | { type: 'initial_charge'; at: number; attempt: number; outcome: ChargeOutcome }
  /** The first payment never succeeded: incomplete -> canceled ('expired'). */
  | { type: 'expire'; at: number }
  /** The current period ended (at must equal periodEnd): cancels, applies a scheduled downgrade, or renews (attempt 1). */
  | { type: 'period_end'; at: number; outcome: ChargeOutcome }
  /** A dunning retry of the renewal while past_due; the last allowed attempt failing cancels ('involuntary'). */
  | { type: 'retry'; at: number; attempt: number; outcome: ChargeOutcome }
  /** Immediate upgrade to a pricier plan with a prorated charge for the rest of the period. */
  | { type: 'upgrade'; at: number; toPlanId: number; attempt: number; outcome: ChargeOutcome }
  /** A downgrade to a cheaper plan, applied at the end of the current period. */
  | { type: 'schedule_downgrade'; at: number; toPlanId: number }
  | { type: 'request_cancel'; at: number }
  | { type: 'revert_cancel'; at: number }
  /** Refund (part of) a succeeded payment of this subscription: cash only, never a status or MRR change. */
  | { type: 'refund'; at: number; payment: Payment; cents: number };

export interface Transition {
  sub: Subscription;
  events: SubscriptionEvent[];
  /** New payment rows, or (refunds) the updated row of an existing payment, matched by idempotency key. */
  payments: Payment[];
  /** True when the input repeated one already applied (same charge, same period end): nothing happened. */
  duplicate: boolean;
}

export class BillingError extends Error {}

/** Retries after a failed renewal, in days after the due date (DESIGN.md). Attempt n+1 happens on day RETRY_DAYS[n-1]. */
export const RETRY_DAYS = [1, 3, 7, 14] as const;
export const MAX_ATTEMPTS = RETRY_DAYS.length + 1;
export const DAY_MS = 86_400_000;

export interface PlanBook { byId(id: number): Plan }

export function planBook(plans: Plan[]): PlanBook {
  const map = new Map(plans.map((p) => [p.id, p]));
  return {
    byId(id) {
      const p = map.get(id);
      if (!p) throw new BillingError(`unknown plan id ${id}`);
      return p;
    },
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** anchor + n intervals, keeping the anchor's day of month (clamped to the month's last day) and time of day. */
export function addMonthsAnchored(anchor: number, months: number): number {
  // calendar arithmetic on whole days (no Date objects: the simulator calls this for every billing period)
  const ms = Math.trunc(anchor);
  const days = Math.floor(ms / DAY_MS), time = ms - days * DAY_MS;
  const { y, m, d } = civilFromDays(days);
  const total = y * 12 + (m - 1) + months;
  const ty = Math.floor(total / 12), tm = total - ty * 12 + 1;
  return daysFromCivil(ty, tm, Math.min(d, daysInMonth(ty, tm))) * DAY_MS + time;
}

// Proleptic Gregorian day numbers (days since 1970-01-01), after H. Hinnant's public-domain algorithms.
function civilFromDays(z: number): { y: number; m: number; d: number } {
  z += 719_468;
  const era = Math.floor(z / 146_097), doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1, m = mp < 10 ? mp + 3 : mp - 9;
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400), yoe = y - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}
function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** The end of the period that starts at `periodStart` for a subscription anchored at `anchor`. */
export function nextBoundary(anchor: number, periodStart: number, plan: Plan): number {
  const step = plan.interval === 'year' ? 12 : 1;
  const a = new Date(anchor), p = new Date(periodStart);
  // start one interval early (day clamping can move a boundary by a few days) and step to the first one after periodStart
  let n = Math.max(0, (p.getUTCFullYear() - a.getUTCFullYear()) * 12 + p.getUTCMonth() - a.getUTCMonth() - step);
  n = Math.floor(n / step) * step;
  while (addMonthsAnchored(anchor, n) <= periodStart) n += step;
  return addMonthsAnchored(anchor, n);
}

export function mrrOf(plan: Plan, status: Status): number {
  return status === 'active' || status === 'past_due' ? plan.monthlyCents : 0;
}

export function chargeKey(subId: number, periodStart: number, attempt: number, upgradeTo?: number): string {
  return upgradeTo === undefined
    ? `sub:${subId}:period:${iso(periodStart)}:attempt:${attempt}`
    : `sub:${subId}:period:${iso(periodStart)}:upgrade:${upgradeTo}:attempt:${attempt}`;
}

/** Prorated price difference for the rest of the period [at, periodEnd), in whole cents (at least 0). */
export function prorationCents(from: Plan, to: Plan, periodStart: number, periodEnd: number, at: number): number {
  const share = Math.max(0, periodEnd - at) / (periodEnd - periodStart);
  return Math.max(0, Math.round((to.priceCents - from.priceCents) * share));
}

function event(sub: Subscription, plans: PlanBook, at: number, type: EventType, from: Status | null,
  data: Record<string, unknown> = {}): SubscriptionEvent {
  return {
    subscriptionId: sub.id, userId: sub.userId, at, type, fromStatus: from, toStatus: sub.status, planId: sub.planId,
    mrrCents: mrrOf(plans.byId(sub.planId), sub.status), data,
  };
}

function payment(sub: Subscription, kind: PaymentKind, at: number, attempt: number, amountCents: number, key: string,
  outcome: ChargeOutcome, periodStart: number, periodEnd: number): Payment {
  return {
    subscriptionId: sub.id, userId: sub.userId, kind, periodStart, periodEnd, attempt, amountCents,
    status: outcome.ok ? 'succeeded' : 'failed', idempotencyKey: key, failureReason: outcome.ok ? null : outcome.reason,
    createdAt: at, settledAt: at, refundedAt: null, refundCents: null,
  };
}

const same = (sub: Subscription): Transition => ({ sub, events: [], payments: [], duplicate: true });

/** A new subscription (signup or reactivation): status incomplete, first period from `at`, a 'created' event. */
export function openSubscription(args: { id: number; userId: number; plan: Plan; at: number }, plans: PlanBook): Transition {
  const { id, userId, plan, at } = args;
  if (!Number.isFinite(at)) throw new BillingError('subscription start must be a valid instant');
  const sub: Subscription = {
    id, userId, planId: plan.id, status: 'incomplete', createdAt: at, anchor: at, periodStart: at,
    periodEnd: nextBoundary(at, at, plan), cancelAtPeriodEnd: false, pendingPlanId: null, endedAt: null,
    endReason: null, dueAttempts: 0, periodKeys: [],
  };
  return { sub, events: [event(sub, plans, at, 'created', null)], payments: [], duplicate: false };
}

function checkTime(sub: Subscription, at: number) {
  if (!Number.isFinite(at)) throw new BillingError('input instant must be a valid time');
  if (at < sub.createdAt) throw new BillingError(`subscription ${sub.id}: input at ${iso(at)} precedes its creation`);
}

/** Apply one input. Never mutates `sub`; throws BillingError for an input the current state cannot take. */
export function applyInput(sub: Subscription, input: BillingInput, plans: PlanBook): Transition {
  checkTime(sub, input.at);
  const plan = plans.byId(sub.planId);
  const s: Subscription = { ...sub, periodKeys: sub.periodKeys };
  const events: SubscriptionEvent[] = [];
  const payments: Payment[] = [];
  const done = (): Transition => ({ sub: s, events, payments, duplicate: false });

  switch (input.type) {
    case 'initial_charge': {
      const key = chargeKey(s.id, s.periodStart, input.attempt);
      if (sub.periodKeys.includes(key)) return same(sub);
      if (s.status !== 'incomplete') throw new BillingError(`subscription ${s.id} is ${s.status}: no initial charge is due`);
      if (input.attempt !== s.dueAttempts + 1) throw new BillingError(`initial charge attempt ${input.attempt} out of order (next is ${s.dueAttempts + 1})`);
      if (input.attempt > MAX_ATTEMPTS) throw new BillingError(`at most ${MAX_ATTEMPTS} attempts per charge`);
      s.dueAttempts = input.attempt;
      s.periodKeys = [...sub.periodKeys, key];
      payments.push(payment(s, 'initial', input.at, input.attempt, plan.priceCents, key, input.outcome, s.periodStart, s.periodEnd));
      if (input.outcome.ok) {
        // the billing cycle stays anchored at creation (as Stripe's billing_cycle_anchor), so a first payment that
        // succeeds on a later attempt pays the same period as the failed one: periods stay contiguous
        s.status = 'active';
        s.dueAttempts = 0;
        events.push(event(s, plans, input.at, 'activated', 'incomplete', { attempt: input.attempt }));
      }
      return done();
    }
    case 'expire': {
      if (s.status === 'canceled' && s.endReason === 'expired') return same(sub);
      if (s.status !== 'incomplete') throw new BillingError(`subscription ${s.id} is ${s.status}: only an incomplete one expires`);
      s.status = 'canceled'; s.endedAt = input.at; s.endReason = 'expired';
      events.push(event(s, plans, input.at, 'expired', 'incomplete', { reason: 'expired' }));
      return done();
    }
    case 'period_end': {
      if (s.status === 'canceled' || input.at < s.periodEnd) return same(sub); // replayed or early: nothing is due
      if (input.at !== s.periodEnd) throw new BillingError(`period end for subscription ${s.id} is ${iso(s.periodEnd)}, not ${iso(input.at)}`);
      if (s.status !== 'active') throw new BillingError(`subscription ${s.id} is ${s.status} at its period end`);
      if (s.cancelAtPeriodEnd) {
        s.status = 'canceled'; s.endedAt = input.at; s.endReason = 'voluntary'; s.pendingPlanId = null;
        events.push(event(s, plans, input.at, 'canceled', 'active', { reason: 'voluntary' }));
        return done();
      }
      if (s.pendingPlanId !== null) {
        const fromPlanId = s.planId;
        s.planId = s.pendingPlanId; s.pendingPlanId = null;
        events.push(event(s, plans, input.at, 'plan_changed', 'active', { from_plan_id: fromPlanId, direction: 'down' }));
      }
      const newPlan = plans.byId(s.planId);
      s.periodStart = input.at;
      s.periodEnd = nextBoundary(s.anchor, input.at, newPlan);
      const key = chargeKey(s.id, s.periodStart, 1);
      s.periodKeys = [key];
      payments.push(payment(s, 'renewal', input.at, 1, newPlan.priceCents, key, input.outcome, s.periodStart, s.periodEnd));
      if (input.outcome.ok) {
        s.dueAttempts = 0;
        events.push(event(s, plans, input.at, 'renewed', 'active', { period_end: iso(s.periodEnd) }));
      } else {
        s.dueAttempts = 1;
        events.push(event(s, plans, input.at, 'payment_failed', 'active', { attempt: 1, reason: input.outcome.reason, kind: 'renewal' }));
        s.status = 'past_due';
        events.push(event(s, plans, input.at, 'past_due', 'active', { attempt: 1 }));
      }
      return done();
    }
    case 'retry': {
      const key = chargeKey(s.id, s.periodStart, input.attempt);
      if (sub.periodKeys.includes(key)) return same(sub);
      if (s.status !== 'past_due') throw new BillingError(`subscription ${s.id} is ${s.status}: no retry is due`);
      if (input.attempt !== s.dueAttempts + 1) throw new BillingError(`retry attempt ${input.attempt} out of order (next is ${s.dueAttempts + 1})`);
      if (input.attempt > MAX_ATTEMPTS) throw new BillingError(`at most ${MAX_ATTEMPTS} attempts per charge`);
      s.dueAttempts = input.attempt;
      s.periodKeys = [...sub.periodKeys, key];
      payments.push(payment(s, 'renewal', input.at, input.attempt, plan.priceCents, key, input.outcome, s.periodStart, s.periodEnd));
      if (input.outcome.ok) {
        s.status = 'active'; s.dueAttempts = 0;
        events.push(event(s, plans, input.at, 'recovered', 'past_due', { attempt: input.attempt }));
      } else {
        events.push(event(s, plans, input.at, 'payment_failed', 'past_due', { attempt: input.attempt, reason: input.outcome.reason, kind: 'renewal' }));
        if (input.attempt === MAX_ATTEMPTS) {
          s.status = 'canceled'; s.endedAt = input.at; s.endReason = 'involuntary'; s.pendingPlanId = null; s.cancelAtPeriodEnd = false;
          events.push(event(s, plans, input.at, 'canceled', 'past_due', { reason: 'involuntary' }));
        }
      }
      return done();
    }
    case 'upgrade': {
      const key = chargeKey(s.id, s.periodStart, input.attempt, input.toPlanId);
      if (sub.periodKeys.includes(key)) return same(sub);
      if (s.status !== 'active') throw new BillingError(`subscription ${s.id} is ${s.status}: only an active subscription upgrades`);
      if (input.at >= s.periodEnd) throw new BillingError('an upgrade must happen inside the current period');
      const to = plans.byId(input.toPlanId);
      if (to.interval !== plan.interval || to.monthlyCents <= plan.monthlyCents) throw new BillingError(`plan ${to.code} is not an upgrade of ${plan.code}`);
      const amount = prorationCents(plan, to, s.periodStart, s.periodEnd, input.at);
      s.periodKeys = [...sub.periodKeys, key];
      if (amount > 0) {
        payments.push(payment(s, 'proration', input.at, input.attempt, amount, key, input.outcome, input.at, s.periodEnd));
        if (!input.outcome.ok) {
          events.push(event(s, plans, input.at, 'payment_failed', 'active', { attempt: input.attempt, reason: input.outcome.reason, kind: 'proration', to_plan_id: to.id }));
          return done();
        }
      }
      const fromPlanId = s.planId;
      s.planId = to.id;
      if (s.pendingPlanId === to.id) s.pendingPlanId = null;
      if (s.pendingPlanId !== null && plans.byId(s.pendingPlanId).monthlyCents >= to.monthlyCents) s.pendingPlanId = null;
      events.push(event(s, plans, input.at, 'plan_changed', 'active', { from_plan_id: fromPlanId, direction: 'up', proration_cents: amount }));
      return done();
    }
    case 'schedule_downgrade': {
      if (s.pendingPlanId === input.toPlanId) return same(sub);
      if (s.status !== 'active' && s.status !== 'past_due') throw new BillingError(`subscription ${s.id} is ${s.status}: cannot schedule a downgrade`);
      const to = plans.byId(input.toPlanId);
      if (to.interval !== plan.interval || to.monthlyCents >= plan.monthlyCents) throw new BillingError(`plan ${to.code} is not a downgrade of ${plan.code}`);
      if (s.cancelAtPeriodEnd) throw new BillingError(`subscription ${s.id} ends at period end: revert the cancel first`);
      s.pendingPlanId = to.id;
      events.push(event(s, plans, input.at, 'downgrade_scheduled', s.status, { to_plan_id: to.id, effective_at: iso(s.periodEnd) }));
      return done();
    }
    case 'request_cancel': {
      if (s.status !== 'active' && s.status !== 'past_due') throw new BillingError(`subscription ${s.id} is ${s.status}: nothing to cancel`);
      if (s.cancelAtPeriodEnd) return same(sub);
      s.cancelAtPeriodEnd = true;
      const dropped = s.pendingPlanId;
      s.pendingPlanId = null; // ending at period end supersedes a scheduled downgrade
      events.push(event(s, plans, input.at, 'cancel_requested', s.status, { effective_at: iso(s.periodEnd), ...(dropped !== null ? { dropped_pending_plan_id: dropped } : {}) }));
      return done();
    }
    case 'revert_cancel': {
      if (!s.cancelAtPeriodEnd) return same(sub);
      if (s.status !== 'active' && s.status !== 'past_due') throw new BillingError(`subscription ${s.id} is ${s.status}: nothing to revert`);
      s.cancelAtPeriodEnd = false;
      events.push(event(s, plans, input.at, 'cancel_reverted', s.status));
      return done();
    }
    case 'refund': {
      const p = input.payment;
      if (p.subscriptionId !== s.id) throw new BillingError(`payment ${p.idempotencyKey} belongs to another subscription`);
      if (p.status === 'refunded') return same(sub);
      if (p.status !== 'succeeded') throw new BillingError(`payment ${p.idempotencyKey} is ${p.status}: only a succeeded payment is refunded`);
      if (!Number.isInteger(input.cents) || input.cents <= 0 || input.cents > p.amountCents) throw new BillingError(`refund must be 1..${p.amountCents} cents`);
      if (input.at < (p.settledAt ?? p.createdAt)) throw new BillingError('a refund cannot precede its payment');
      payments.push({ ...p, status: 'refunded', refundedAt: input.at, refundCents: input.cents });
      events.push(event(s, plans, input.at, 'refunded', s.status, { payment_key: p.idempotencyKey, refund_cents: input.cents }));
      return done();
    }
  }
}
