// One customer's whole history, generated from its own random streams: the account, its subscriptions driven through
// the billing state machine (server/billing/machine.ts), payments, visits (with the visit -> signup -> first payment
// funnel and non-converting visitors) and viewing. Rows go straight into the batch's binary COPY buffers.
import {
  applyInput, openSubscription, RETRY_DAYS, DAY_MS, type BillingInput, type Payment, type Plan, type PlanBook,
  type Status, type Subscription, type SubscriptionEvent, type Transition,
} from '../../server/billing/machine.ts';
import type { BusinessParams, PlanCode } from './params.ts';
import { PLAN_CODES } from './params.ts';
import { rngFor, uuid, expo, normal, pickCumulative, cumulate, type Rng } from './rng.ts';
import { BinaryCopy } from '../../server/db/copy-binary.ts';

export const MONTH_MS = 30.436875 * DAY_MS;
const HOUR_MS = 3_600_000, MINUTE_MS = 60_000;

export interface Catalog {
  titleIds: number[];
  isMovie: boolean[];
  durationMin: number[];
  /** Per genre: title indices, most recent releases first (a popularity proxy). */
  genreTitles: number[][];
  genreCumulative: Float64Array; // genre popularity (title counts) for picking affinities
}

export interface Context {
  seed: number;
  b: BusinessParams;
  windowStart: number;
  windowEnd: number;
  plans: Record<PlanCode, Plan>;
  tiers: Plan[]; // cheapest first
  book: PlanBook;
  planMixCumulative: Float64Array;
  /** Customers 0..baseCustomers-1 already subscribe when the window starts; the rest sign up inside it. */
  baseCustomers: number;
  signupCustomers: number;
  /** Cumulative signup intensity per day of the window (Q4 uplift × growth trend). */
  signupCdf: Float64Array;
  returnShare: number;
  returnMeanMs: number;
  retrySuccess: number;
  catalog: Catalog;
  userIdBase: number;
}

export const STREAM_BILLING = 1, STREAM_ACTIVITY = 2, STREAM_PILOT = 3;

/** Accumulates the model's own expectations while generating (the validation summary's targets). */
export class Expectations {
  hazard: Record<string, number> = {};
  involuntary: Record<string, number> = {};
  periods: Record<string, number> = {};
  /** One billing period that starts inside the window, with its voluntary-churn hazard. */
  add(plan: string, p: number) {
    this.hazard[plan] = (this.hazard[plan] ?? 0) + p;
    this.periods[plan] = (this.periods[plan] ?? 0) + 1;
  }
  /** A renewal inside the window, with its chance of ending in involuntary churn. */
  addRenewal(plan: string, p: number) { this.involuntary[plan] = (this.involuntary[plan] ?? 0) + p; }
  voluntary(plan: string) { return this.periods[plan] ? this.hazard[plan] / this.periods[plan] : 0; }
  involuntaryRate(plan: string) { return this.periods[plan] ? this.involuntary[plan] / this.periods[plan] : 0; }
}

/** The next id of each event table: the run reserves them (tables locked) so rows need no per-row sequence call. */
export interface EventIds { subscription_events: number; payments: number; visits: number; watch_events: number }

/** One batch of customers: per table, the rows of one binary COPY (server/db/copy-binary.ts). */
export class Batch {
  users = new BinaryCopy();
  subscriptions = new BinaryCopy();
  events = new BinaryCopy();
  payments = new BinaryCopy();
  visits = new BinaryCopy();
  watch = new BinaryCopy();
  /** `ids` advances as rows are added. */
  constructor(readonly ids: EventIds) {}
  get rows() {
    return this.users.rows + this.subscriptions.rows + this.events.rows + this.payments.rows + this.visits.rows + this.watch.rows;
  }
}

// ── rows, field by field in COPY_COLUMNS order ──────────────────────────────────────────────────────────────────
export const COPY_COLUMNS = {
  users: 'id, email, display_name, country, role, status, simulated, created_at',
  subscriptions: 'id, user_id, plan_id, status, created_at, current_period_start, current_period_end, cancel_at_period_end, pending_plan_id, ended_at, end_reason',
  subscription_events: 'id, subscription_id, user_id, at, type, from_status, to_status, plan_id, mrr_cents, data',
  payments: 'id, user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, currency, status, idempotency_key, failure_reason, created_at, settled_at, refunded_at, refund_cents',
  visits: 'id, visitor_id, user_id, at, path, referrer_class, simulated',
  watch_events: 'id, user_id, title_id, started_at, seconds_watched, completed',
} as const;

function eventRow(out: Batch, e: SubscriptionEvent) {
  out.events.row(10).int8(out.ids.subscription_events++).int8(e.subscriptionId).int8(e.userId).timestamptz(e.at).text(e.type)
    .nullableText(e.fromStatus).text(e.toStatus).int4(e.planId).numeric(e.mrrCents, 2).jsonb(JSON.stringify(e.data));
}
function paymentRow(out: Batch, p: Payment) {
  out.payments.row(16).int8(out.ids.payments++).int8(p.userId).int8(p.subscriptionId).text(p.kind).timestamptz(p.periodStart)
    .timestamptz(p.periodEnd).int2(p.attempt).int4(p.amountCents).text('USD').text(p.status).text(p.idempotencyKey)
    .nullableText(p.failureReason).timestamptz(p.createdAt).nullableTimestamptz(p.settledAt).nullableTimestamptz(p.refundedAt)
    .nullableInt4(p.refundCents);
}
function subscriptionRow(out: Batch, s: Subscription) {
  out.subscriptions.row(11).int8(s.id).int8(s.userId).int4(s.planId).text(s.status).timestamptz(s.createdAt)
    .timestamptz(s.periodStart).timestamptz(s.periodEnd).bool(s.cancelAtPeriodEnd).nullableInt4(s.pendingPlanId)
    .nullableTimestamptz(s.endedAt).nullableText(s.endReason);
}

// ── small weighted vocabularies ─────────────────────────────────────────────────────────────────────────────────
function vocab<T>(pairs: [T, number][]) {
  const values = pairs.map((p) => p[0]);
  const cum = cumulate(pairs.map((p) => p[1]));
  return (r: Rng) => values[pickCumulative(r, cum)];
}
const FIRST = ['Ava', 'Liam', 'Maya', 'Noah', 'Emma', 'Lucas', 'Zoe', 'Ethan', 'Mia', 'Leo', 'Sofia', 'Omar', 'Priya', 'Kenji',
  'Chloe', 'Mateo', 'Amara', 'Jonas', 'Aisha', 'Diego', 'Hana', 'Felix', 'Isla', 'Ravi', 'Nora', 'Tariq', 'Lena', 'Hugo', 'Yara', 'Sam'];
const LAST = ['Smith', 'Garcia', 'Chen', 'Patel', 'Müller', 'Kim', 'Silva', 'Okafor', 'Rossi', 'Dubois', 'Nguyen', 'Kowalski',
  'Johnson', 'Tanaka', 'Haddad', 'Brown', 'Lopez', 'Ivanova', 'Singh', 'Andersen', 'Moreau', 'Costa', 'Walker', 'Khan'];
const country = vocab<string>([['US', 45], ['GB', 8], ['IN', 8], ['CA', 7], ['BR', 7], ['DE', 5], ['FR', 5], ['MX', 5], ['ES', 4], ['AU', 3], ['JP', 3]]);
const failureReason = vocab<string>([['card_declined', 45], ['insufficient_funds', 30], ['expired_card', 15], ['processing_error', 10]]);
const acquisitionReferrer = vocab<string>([['search', 30], ['social', 22], ['ads', 20], ['direct', 15], ['email', 8], ['partner', 5]]);
const subscriberReferrer = vocab<string>([['direct', 50], ['internal', 25], ['email', 12], ['search', 8], ['social', 5]]);
const browsePath = vocab<string>([['/browse', 40], ['title', 35], ['/', 15], ['/account', 10]]);
const landingPath = vocab<string>([['/', 45], ['/browse', 25], ['title', 20], ['/plans', 10]]);

/** Inverse of the cumulative day intensity: the instant of the q-th quantile (0 <= q < 1) of signups. */
export function signupInstant(ctx: Context, q: number): number {
  const cdf = ctx.signupCdf, total = cdf[cdf.length - 1], x = q * total;
  let lo = 0, hi = cdf.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] > x) hi = mid; else lo = mid + 1; }
  const before = lo === 0 ? 0 : cdf[lo - 1];
  const within = (x - before) / (cdf[lo] - before);
  return Math.min(ctx.windowEnd - 1, ctx.windowStart + (lo + within) * DAY_MS);
}

interface Life { sub: Subscription; from: number; to: number; cancelRequestedAt: number | null; reactivation: boolean; signupAt: number }

export interface CustomerOutcome { activeAtStart: boolean; activeAtEnd: boolean; subscriptions: number }

/**
 * Generates customer `index`. With `out` null only the billing runs (the growth calibration pilot): no activity, no
 * rows, subscription ids from a local counter. `nextSubId` hands out subscription ids in generation order.
 */
export function simulateCustomer(ctx: Context, index: number, out: Batch | null, nextSubId: () => number,
  expect: Expectations | null, stream = STREAM_BILLING): CustomerOutcome {
  const b = ctx.b;
  const rb = rngFor(ctx.seed, stream, index);
  const userId = ctx.userIdBase + index;
  const isBase = index < ctx.baseCustomers;
  const serial = rb() < b.serialChurnerShare;
  const pickPlan = () => PLAN_CODES[pickCumulative(rb, ctx.planMixCumulative)];
  let planCode: PlanCode = pickPlan();

  let accountCreated: number, t: number;
  if (isBase) {
    t = ctx.windowStart - (0.5 + rb() * 27) * DAY_MS; // the current period straddles the window start
    accountCreated = t - (rb() * 48) * MONTH_MS;       // tenure up to four years
  } else {
    const k = index - ctx.baseCustomers;
    t = signupInstant(ctx, (k + rb()) / ctx.signupCustomers);
    accountCreated = t - (2 + rb() * 13) * MINUTE_MS;
  }
  let tenureFrom = isBase ? accountCreated : t;

  const lives: Life[] = [];
  let firstSub = true;
  let activeAtEnd = false;
  let subscriptions = 0;
  const end = ctx.windowEnd;

  const emit = (tr: Transition, payments: Payment[], pIndex: Map<string, number>) => {
    if (out) for (const e of tr.events) eventRow(out, e);
    for (const p of tr.payments) {
      const at = pIndex.get(p.idempotencyKey);
      if (at === undefined) { pIndex.set(p.idempotencyKey, payments.length); payments.push(p); } else payments[at] = p;
    }
  };

  for (;;) {
    const subId = nextSubId();
    subscriptions++;
    const payments: Payment[] = [];
    const pIndex = new Map<string, number>();
    const signupAt = t;
    let tr = openSubscription({ id: subId, userId, plan: ctx.plans[planCode], at: t }, ctx.book);
    let s = tr.sub;
    emit(tr, payments, pIndex);
    let activatedAt = t;
    const step = (input: BillingInput) => {
      tr = applyInput(s, input, ctx.book); s = tr.sub; emit(tr, payments, pIndex);
      if (input.type === 'initial_charge' && s.status === 'active') activatedAt = input.at;
    };
    const status = (): Status => s.status; // read through a call: `step` replaces `s`, so no narrowing

    // first payment: imported base customers already pay; new signups and returns can fail and retry once
    const firstOk = (isBase && firstSub) || rb() >= b.initialFailureRate;
    step({ type: 'initial_charge', at: t, attempt: 1, outcome: firstOk ? { ok: true } : { ok: false, reason: failureReason(rb) } });
    if (status() === 'incomplete') {
      const retryAt = t + (0.5 + rb() * 19.5) * HOUR_MS;
      if (retryAt < end) {
        const ok = rb() < b.initialRetrySuccess;
        step({ type: 'initial_charge', at: retryAt, attempt: 2, outcome: ok ? { ok: true } : { ok: false, reason: failureReason(rb) } });
      }
      if (status() === 'incomplete' && t + 23 * HOUR_MS < end) step({ type: 'expire', at: t + 23 * HOUR_MS });
    }

    let churnAt: number | null = null;
    if (status() === 'active') {
      const from = activatedAt;
      let lastChargeAt = activatedAt, lastChargeKey: string | null = payments[payments.length - 1].idempotencyKey;
      let cancelRequestedAt: number | null = null;
      for (;;) {
        const ps = s.periodStart, pe = s.periodEnd;
        type Action = { at: number; kind: 'retry' | 'refund' | 'cancel' | 'revert' | 'upgrade' | 'downgrade'; n?: number };
        const actions: Action[] = [];
        if (status() === 'past_due') {
          for (let k = 0; k < RETRY_DAYS.length; k++) actions.push({ at: ps + RETRY_DAYS[k] * DAY_MS + rb() * 6 * HOUR_MS, kind: 'retry', n: k + 2 });
        } else if (lastChargeKey && rb() < b.refundRate) {
          const room = Math.min(6 * DAY_MS, pe - lastChargeAt - HOUR_MS);
          if (room > 0) actions.push({ at: lastChargeAt + HOUR_MS + rb() * room, kind: 'refund' });
        }
        const tenureMonths = (ps - tenureFrom) / MONTH_MS;
        const hazard = b.voluntaryChurn[planCode] * (tenureMonths < b.newSubscriberMonths ? b.newSubscriberChurnMultiplier : 1)
          * (serial ? b.serialChurnerMultiplier : 1);
        const periodMonths = (pe - ps) / MONTH_MS;
        // voluntaryChurn is the churn that happens: ask a few more to cancel, as some change their mind before period end
        const pPeriod = 1 - Math.pow(1 - Math.min(hazard / (1 - b.cancelRevertRate), 0.999), periodMonths);
        if (expect && ps >= ctx.windowStart && ps < end) expect.add(planCode, status() === 'active' ? Math.min(hazard, 1) : 0);
        if (rb() < pPeriod) {
          const at = ps + rb() * (pe - ps - MINUTE_MS);
          actions.push({ at, kind: 'cancel' });
          if (rb() < b.cancelRevertRate) actions.push({ at: at + rb() * (pe - at - MINUTE_MS), kind: 'revert' });
        }
        const tier = ctx.tiers.findIndex((p) => p.code === planCode);
        if (tier < ctx.tiers.length - 1 && rb() < b.upgradeRate * periodMonths) actions.push({ at: ps + rb() * (pe - ps - HOUR_MS), kind: 'upgrade', n: rb() < 0.7 ? tier + 1 : ctx.tiers.length - 1 });
        if (tier > 0 && rb() < b.downgradeRate * periodMonths) actions.push({ at: ps + rb() * (pe - ps - HOUR_MS), kind: 'downgrade', n: tier - 1 });
        actions.sort((x, y) => x.at - y.at);

        let windowOver = false;
        for (const a of actions) {
          if (a.at >= end) { windowOver = true; break; }
          switch (a.kind) {
            case 'retry':
              if (status() !== 'past_due') break;
              step({ type: 'retry', at: a.at, attempt: a.n!, outcome: rb() < ctx.retrySuccess ? { ok: true } : { ok: false, reason: failureReason(rb) } });
              if (status() === 'active') { lastChargeAt = a.at; lastChargeKey = payments[payments.length - 1].idempotencyKey; }
              break;
            case 'refund': {
              const i = pIndex.get(lastChargeKey!);
              const p = i === undefined ? undefined : payments[i];
              if (!p || p.status !== 'succeeded') break;
              const cents = rb() < 0.2 ? Math.max(1, Math.round(p.amountCents / 2)) : p.amountCents;
              step({ type: 'refund', at: a.at, payment: p, cents });
              break;
            }
            case 'cancel':
              if ((status() === 'active' || status() === 'past_due') && !s.cancelAtPeriodEnd) { step({ type: 'request_cancel', at: a.at }); cancelRequestedAt = a.at; }
              break;
            case 'revert':
              if (s.cancelAtPeriodEnd && status() !== 'canceled') { step({ type: 'revert_cancel', at: a.at }); cancelRequestedAt = null; }
              break;
            case 'upgrade': {
              const to = ctx.tiers[a.n!];
              if (status() !== 'active' || to.monthlyCents <= ctx.plans[planCode].monthlyCents || s.cancelAtPeriodEnd) break;
              const ok = rb() >= b.renewalFailureRate;
              step({ type: 'upgrade', at: a.at, toPlanId: to.id, attempt: 1, outcome: ok ? { ok: true } : { ok: false, reason: failureReason(rb) } });
              if (s.planId === to.id) { planCode = to.code as PlanCode; }
              break;
            }
            case 'downgrade': {
              const to = ctx.tiers[a.n!];
              if ((status() !== 'active' && status() !== 'past_due') || s.cancelAtPeriodEnd || s.pendingPlanId !== null
                || to.monthlyCents >= ctx.plans[planCode].monthlyCents) break;
              step({ type: 'schedule_downgrade', at: a.at, toPlanId: to.id });
              break;
            }
          }
          if (status() === 'canceled') { churnAt = a.at; break; }
        }
        if (status() === 'canceled' || windowOver || pe >= end) break;

        const ok = rb() >= b.renewalFailureRate;
        if (expect && !s.cancelAtPeriodEnd && pe >= ctx.windowStart) {
          expect.addRenewal(planCode, b.renewalFailureRate * (1 - b.retryRecoveryRate));
        }
        step({ type: 'period_end', at: pe, outcome: ok ? { ok: true } : { ok: false, reason: failureReason(rb) } });
        planCode = ctx.book.byId(s.planId).code as PlanCode;
        if (status() === 'canceled') { churnAt = pe; break; }
        lastChargeAt = pe;
        lastChargeKey = ok ? payments[payments.length - 1].idempotencyKey : null;
      }
      lives.push({ sub: s, from, to: churnAt ?? end, cancelRequestedAt: s.endReason === 'voluntary' ? cancelRequestedAt : null,
        reactivation: !firstSub, signupAt });
      if (status() === 'active' || status() === 'past_due') activeAtEnd = true;
    } else {
      lives.push({ sub: s, from: signupAt, to: signupAt, cancelRequestedAt: null, reactivation: !firstSub, signupAt });
    }

    if (out) {
      subscriptionRow(out, s);
      for (const p of payments) paymentRow(out, p);
    }
    if (churnAt === null) break;
    // a churned customer may come back: a share returns, after an exponential delay
    if (rb() >= ctx.returnShare) break;
    t = churnAt + expo(rb, ctx.returnMeanMs) + rb() * DAY_MS;
    if (t >= end) break;
    if (rb() >= b.returnSamePlan) planCode = pickPlan();
    tenureFrom = t;
    firstSub = false;
  }

  if (out) writeActivity(ctx, index, userId, isBase, accountCreated, lives, out);
  return { activeAtStart: isBase, activeAtEnd, subscriptions };
}

function titlePath(ctx: Context, r: Rng) {
  return `/titles/${ctx.catalog.titleIds[Math.floor(r() * ctx.catalog.titleIds.length)]}`;
}

function writeActivity(ctx: Context, index: number, userId: number, isBase: boolean, accountCreated: number, lives: Life[], out: Batch) {
  const b = ctx.b, cat = ctx.catalog;
  const ra = rngFor(ctx.seed, STREAM_ACTIVITY, index);
  const start = ctx.windowStart, end = ctx.windowEnd;
  const first = FIRST[Math.floor(ra() * FIRST.length)], last = LAST[Math.floor(ra() * LAST.length)];
  out.users.row(8).int8(userId).text(`u${index + 1}.s${ctx.seed}@sim.marquee.test`).text(`${first} ${last}`).text(country(ra))
    .text('subscriber').text('active').bool(true).timestamptz(accountCreated);

  const visitor = uuid(ra);
  const visit = (vid: string, uid: number | null, at: number, path: string, ref: string) => {
    if (at < start || at >= end) return;
    if (path === 'title') path = titlePath(ctx, ra);
    out.visits.row(7).int8(out.ids.visits++).uuid(vid);
    if (uid === null) out.visits.null(); else out.visits.int8(uid);
    out.visits.timestamptz(at).text(path).text(ref).bool(true);
  };

  // the funnel: a new customer's visits before signing up, and visitors around the same time who never sign up
  if (!isBase) {
    const signupAt = lives[0].signupAt;
    const channel = acquisitionReferrer(ra);
    const n = 1 + Math.floor(ra() * 3);
    const times: number[] = [];
    for (let k = 0; k < n - 1; k++) times.push(signupAt - (1 + ra() * 10 * 24) * HOUR_MS);
    times.sort((x, y) => x - y);
    times.forEach((at, k) => visit(visitor, null, at, landingPath(ra), k === 0 ? channel : (ra() < 0.6 ? 'direct' : channel)));
    visit(visitor, null, signupAt - (1 + ra() * 20) * MINUTE_MS, '/signup', n === 1 ? channel : 'direct');
    const anon = 1 / b.visitToSignupRate - 1;
    const count = Math.floor(anon) + (ra() < anon - Math.floor(anon) ? 1 : 0);
    for (let k = 0; k < count; k++) {
      const vid = uuid(ra);
      const ref = acquisitionReferrer(ra);
      let at = signupAt + (ra() - 0.5) * 30 * DAY_MS;
      const visits = 1 + (ra() < 0.35 ? 1 : 0) + (ra() < 0.1 ? 1 : 0);
      for (let v = 0; v < visits; v++) {
        visit(vid, null, at, v === visits - 1 && ra() < 0.3 ? '/plans' : landingPath(ra), v === 0 ? ref : 'direct');
        at += (0.2 + ra() * 72) * HOUR_MS;
      }
    }
  }

  // per-user taste: three favourite genres (picked by catalog weight) take 85 % of viewing
  const G = cat.genreTitles.length;
  const fav = [pickCumulative(ra, cat.genreCumulative), pickCumulative(ra, cat.genreCumulative), pickCumulative(ra, cat.genreCumulative)];
  const favCum = [0.5, 0.8, 1.0];
  const watchRate = b.watchSessionsPerMonth * Math.exp(0.5 * normal(ra) - 0.125);
  const visitRate = b.visitsPerMonth * Math.exp(0.4 * normal(ra) - 0.08);
  const signal = ra() < b.preCancelSignalShare;

  for (const life of lives) {
    if (life.to <= life.from) continue;
    if (life.reactivation) visit(visitor, userId, life.from - (1 + ra() * 47 * 60) * MINUTE_MS, '/plans', ra() < 0.5 ? 'email' : subscriberReferrer(ra));
    const to = Math.min(life.to, end);
    if (visitRate > 0) {
      for (let at = Math.max(life.from, start) + expo(ra, MONTH_MS / visitRate); at < to; at += expo(ra, MONTH_MS / visitRate)) {
        visit(visitor, userId, at, browsePath(ra), subscriberReferrer(ra));
      }
    }
    if (watchRate <= 0 || G === 0) continue;
    const dropFrom = signal && life.cancelRequestedAt !== null ? life.cancelRequestedAt - b.preCancelDays * DAY_MS : Infinity;
    for (let at = Math.max(life.from, start) + expo(ra, MONTH_MS / watchRate); at < to; at += expo(ra, MONTH_MS / watchRate)) {
      if (at >= dropFrom && ra() >= b.preCancelWatchFactor) continue;
      const u = ra();
      const g = u < 0.85 ? fav[u < 0.85 * favCum[0] ? 0 : u < 0.85 * favCum[1] ? 1 : 2] : Math.floor(ra() * G);
      const list = cat.genreTitles[g];
      if (!list.length) continue;
      const x = ra();
      const ti = list[Math.floor(list.length * x * x)];
      let seconds: number, completed: boolean;
      if (cat.isMovie[ti]) {
        const dur = (cat.durationMin[ti] || 100) * 60;
        completed = ra() < 0.55;
        seconds = Math.floor(dur * (completed ? 0.92 + ra() * 0.08 : 0.03 + ra() * 0.87));
      } else {
        const episodes = 1 + Math.floor(expo(ra, 1.2));
        completed = ra() < 0.5;
        seconds = Math.floor(episodes * (1500 + ra() * 1800));
      }
      seconds = Math.max(30, Math.min(86_400, seconds));
      out.watch.row(6).int8(out.ids.watch_events++).int8(userId).int8(cat.titleIds[ti]).timestamptz(at).int4(seconds).bool(completed);
    }
  }
}
