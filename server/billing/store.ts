// Live billing's one path to the database: a subscription row is loaded with the bookkeeping the state machine needs
// (anchor, dueAttempts, periodKeys, derived from the row and its payments exactly as the simulator holds them), locked
// FOR UPDATE, driven through openSubscription/applyInput (server/billing/machine.ts), and the resulting state, events
// and payments are written in the same transaction. Charges go through chargeLive: the payment row is written
// `pending` with its deterministic idempotency key before the gateway is asked, and settled by the machine once the
// gateway answers — or later, by reconcilePending, when it timed out. See server/billing/README.md ("Live billing").
import sql from 'sql-template-tag';
import { noteLocalChange, type Db, type Queryable } from '../db/index.ts';
import { HttpError } from '../errors.ts';
import {
  applyInput, openSubscription, planBook, BillingError, type BillingInput, type ChargeOutcome, type Payment, type Plan,
  type PlanBook, type Subscription, type Transition,
} from './machine.ts';
import { failureReason, type GatewayResult, type PaymentGateway } from './gateway.ts';

export interface PlanRow extends Plan {
  name: string;
  currency: string;
  quality: string;
  screens: number;
  hasAds: boolean;
  active: boolean;
  sortOrder: number;
}

export interface Plans { list: PlanRow[]; book: PlanBook; byCode(code: string): PlanRow | undefined; byId(id: number): PlanRow }

export async function loadPlans(q: Queryable): Promise<Plans> {
  const rows = await q.query<any>(sql`SELECT id, code, name, price_cents, currency, billing_interval, quality, screens, has_ads,
      active, sort_order, monthly_cents FROM plans ORDER BY sort_order, price_cents, id`);
  const list: PlanRow[] = rows.map((r) => ({
    id: r.id, code: r.code, name: r.name, priceCents: r.price_cents, currency: r.currency, interval: r.billing_interval,
    quality: r.quality, screens: r.screens, hasAds: r.has_ads, active: r.active, sortOrder: r.sort_order, monthlyCents: r.monthly_cents,
  }));
  const book = planBook(list);
  return {
    list, book,
    byCode: (code) => list.find((p) => p.code === code),
    byId: (id) => book.byId(id) as PlanRow,
  };
}

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (d: Date | null) => (d === null ? null : d.getTime());

/** The prefix of every idempotency key charged in the period starting at periodStart (machine.ts chargeKey). */
export const periodKeyPrefix = (subId: number, periodStart: number) => `sub:${subId}:period:${iso(periodStart)}:`;

/**
 * The machine's view of a subscriptions row. anchor = created_at (openSubscription anchors there); periodKeys = the
 * settled payments of the current period (a pending one is not charged yet: it is settled by the input that wrote
 * it); dueAttempts = the attempts already made for the charge now due: initial attempts while incomplete, renewal
 * attempts while past_due, else 0.
 */
export async function loadSubscription(q: Queryable, id: number, opts: { forUpdate?: boolean } = {}): Promise<Subscription | undefined> {
  const row = await q.one<any>(sql`SELECT id, user_id, plan_id, status, created_at, current_period_start, current_period_end,
      cancel_at_period_end, pending_plan_id, ended_at, end_reason FROM subscriptions WHERE id = ${id}
    ${opts.forUpdate ? sql`FOR UPDATE` : sql``}`);
  if (!row) return undefined;
  const periodStart = row.current_period_start.getTime();
  const keys = await q.query<{ idempotency_key: string; kind: string; attempt: number }>(sql`SELECT idempotency_key, kind, attempt
    FROM payments WHERE subscription_id = ${id} AND status <> 'pending' AND starts_with(idempotency_key, ${periodKeyPrefix(id, periodStart)})
    ORDER BY created_at, id`);
  const dueKind = row.status === 'incomplete' ? 'initial' : row.status === 'past_due' ? 'renewal' : null;
  const dueAttempts = dueKind ? Math.max(0, ...keys.filter((k) => k.kind === dueKind && !k.idempotency_key.includes(':upgrade:')).map((k) => k.attempt)) : 0;
  return {
    id: row.id, userId: row.user_id, planId: row.plan_id, status: row.status, createdAt: row.created_at.getTime(),
    anchor: row.created_at.getTime(), periodStart, periodEnd: row.current_period_end.getTime(),
    cancelAtPeriodEnd: row.cancel_at_period_end, pendingPlanId: row.pending_plan_id, endedAt: ms(row.ended_at),
    endReason: row.end_reason, dueAttempts, periodKeys: keys.map((k) => k.idempotency_key),
  };
}

/** The customer's live (not canceled) subscription id, else their latest one, else undefined. */
export async function currentSubscriptionId(q: Queryable, userId: number): Promise<number | undefined> {
  const row = await q.one<{ id: number }>(sql`SELECT id FROM subscriptions WHERE user_id = ${userId}
    ORDER BY (status <> 'canceled') DESC, created_at DESC, id DESC LIMIT 1`);
  return row?.id;
}

async function writePayment(q: Queryable, p: Payment, currency = 'USD'): Promise<number> {
  const row = await q.one<{ id: number }>(sql`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt,
      amount_cents, currency, status, idempotency_key, failure_reason, created_at, settled_at, refunded_at, refund_cents)
    VALUES (${p.userId}, ${p.subscriptionId}, ${p.kind}, ${new Date(p.periodStart)}, ${new Date(p.periodEnd)}, ${p.attempt},
      ${p.amountCents}, ${currency}, ${p.status}, ${p.idempotencyKey}, ${p.failureReason}, ${new Date(p.createdAt)},
      ${p.settledAt === null ? null : new Date(p.settledAt)}, ${p.refundedAt === null ? null : new Date(p.refundedAt)}, ${p.refundCents})
    ON CONFLICT (idempotency_key) DO UPDATE SET status = EXCLUDED.status, failure_reason = EXCLUDED.failure_reason,
      settled_at = EXCLUDED.settled_at, refunded_at = EXCLUDED.refunded_at, refund_cents = EXCLUDED.refund_cents
      WHERE payments.subscription_id = EXCLUDED.subscription_id
    RETURNING id`);
  if (!row) throw new BillingError(`payment ${p.idempotencyKey} belongs to another subscription`);
  return row.id;
}

/** Writes a transition: the subscription row (inserted when `isNew`), its events in order, its payments (upserted by key). */
export async function writeTransition(q: Queryable, tr: Transition, opts: { isNew?: boolean } = {}): Promise<{ paymentIds: number[] }> {
  const s = tr.sub;
  const d = (v: number | null) => (v === null ? null : new Date(v));
  // this process's caches of the user's access drop it now (0021's trigger tells every process at commit)
  if (opts.isNew || !tr.duplicate) noteLocalChange(`subscriptions:${s.userId}`);
  if (opts.isNew) {
    await q.query(sql`INSERT INTO subscriptions (id, user_id, plan_id, status, created_at, current_period_start, current_period_end,
        cancel_at_period_end, pending_plan_id, ended_at, end_reason) OVERRIDING SYSTEM VALUE
      VALUES (${s.id}, ${s.userId}, ${s.planId}, ${s.status}, ${d(s.createdAt)}, ${d(s.periodStart)}, ${d(s.periodEnd)},
        ${s.cancelAtPeriodEnd}, ${s.pendingPlanId}, ${d(s.endedAt)}, ${s.endReason})`);
  } else if (!tr.duplicate) {
    await q.query(sql`UPDATE subscriptions SET plan_id = ${s.planId}, status = ${s.status}, current_period_start = ${d(s.periodStart)},
        current_period_end = ${d(s.periodEnd)}, cancel_at_period_end = ${s.cancelAtPeriodEnd}, pending_plan_id = ${s.pendingPlanId},
        ended_at = ${d(s.endedAt)}, end_reason = ${s.endReason}
      WHERE id = ${s.id}`);
  }
  for (const e of tr.events) {
    await q.query(sql`INSERT INTO subscription_events (subscription_id, user_id, at, type, from_status, to_status, plan_id, mrr_cents, data)
      VALUES (${e.subscriptionId}, ${e.userId}, ${new Date(e.at)}, ${e.type}, ${e.fromStatus}, ${e.toStatus}, ${e.planId}, ${e.mrrCents},
        ${JSON.stringify(e.data)})`);
  }
  const paymentIds: number[] = [];
  for (const p of tr.payments) paymentIds.push(await writePayment(q, p));
  return { paymentIds };
}

/**
 * A new subscription (signup or reactivation) for `userId` on `planId`, `incomplete`, with its `created` event. Run
 * inside a transaction; the schema's one-live-subscription-per-customer index refuses a second live one.
 */
export async function openLive(q: Queryable, args: { userId: number; planId: number; at: Date }, plans?: Plans): Promise<Transition> {
  plans ??= await loadPlans(q);
  const id = (await q.one<{ id: number }>(sql`SELECT nextval(pg_get_serial_sequence('subscriptions', 'id')) AS id`))!.id;
  const tr = openSubscription({ id, userId: args.userId, plan: plans.byId(args.planId), at: args.at.getTime() }, plans.book);
  await writeTransition(q, tr, { isNew: true });
  return tr;
}

/**
 * One machine input for subscription `subscriptionId`, inside the caller's transaction: the row is locked, the input
 * applied, the rows written. For inputs that charge nothing (schedule_downgrade, request_cancel, revert_cancel, expire,
 * a period_end that cancels) or whose outcome is already known. Charges go through chargeLive. Throws BillingError
 * when the state cannot take the input (nothing written).
 */
export async function applyLive(q: Queryable, subscriptionId: number, input: BillingInput, plans?: Plans): Promise<Transition> {
  plans ??= await loadPlans(q);
  const sub = await loadSubscription(q, subscriptionId, { forUpdate: true });
  if (!sub) throw new BillingError(`no subscription ${subscriptionId}`);
  const tr = applyInput(sub, input, plans.book);
  await writeTransition(q, tr);
  return tr;
}

/** A charging input without its outcome: chargeLive asks the gateway for that. */
export type ChargeStep =
  | { type: 'initial_charge'; at: number; attempt: number }
  | { type: 'period_end'; at: number }
  | { type: 'retry'; at: number; attempt: number }
  | { type: 'upgrade'; at: number; toPlanId: number; attempt: number };

export interface PaymentRow {
  id: number; userId: number; subscriptionId: number; kind: string; status: string; amountCents: number; currency: string;
  idempotencyKey: string; failureReason: string | null; attempt: number; createdAt: Date;
}

export type ChargeResult =
  /** The gateway answered and the machine applied it (payment succeeded or failed). */
  | { kind: 'settled'; transition: Transition; payment: PaymentRow; result: GatewayResult }
  /** The gateway timed out: the payment stays `pending` until reconcilePending learns the outcome. */
  | { kind: 'pending'; payment: PaymentRow }
  /** Nothing to charge (a period end that cancels, a proration of 0 cents): applied as is. */
  | { kind: 'applied'; transition: Transition }
  /** The step was already applied (its key is charged in this period, or the period already ended). */
  | { kind: 'duplicate' }
  /** Another charge of this subscription is still pending: nothing was done. */
  | { kind: 'in_flight'; payment: PaymentRow }
  /** `build` decided nothing is due. */
  | { kind: 'nothing' };

export interface CardRef { token: string; offSession: boolean }

const paymentColumns = sql`id, user_id, subscription_id, kind, status, amount_cents, currency, idempotency_key, failure_reason, attempt, created_at`;
const toPaymentRow = (r: any): PaymentRow => ({
  id: r.id, userId: r.user_id, subscriptionId: r.subscription_id, kind: r.kind, status: r.status, amountCents: r.amount_cents,
  currency: r.currency, idempotencyKey: r.idempotency_key, failureReason: r.failure_reason, attempt: r.attempt, createdAt: r.created_at,
});

export function outcomeOf(result: GatewayResult): ChargeOutcome {
  return result.status === 'succeeded' ? { ok: true } : { ok: false, reason: failureReason(result) ?? 'processing_error' };
}

/**
 * Charge through the gateway and apply the outcome — the way every live charge happens (checkout, retries after a
 * card update, upgrades; renewal and dunning jobs too):
 *  1. one transaction: lock the subscription; if a payment of it is pending, stop (`in_flight`); `build(sub, plans)`
 *     picks the step from the locked state (e.g. attempt = sub.dueAttempts + 1) or null; the machine previews it; a
 *     step that charges nothing is applied right away; otherwise its payment row is written `pending` (the machine's
 *     key, amount and period) with a charge intent (the step, the card) and committed;
 *  2. the gateway is asked with that key (no transaction open meanwhile);
 *  3. one transaction: the machine applies the step with the gateway's outcome and the pending row becomes the
 *     machine's row (succeeded or failed). A timeout (or a thrown error: outcome unknown) leaves it pending.
 */
export async function chargeLive(db: Db, gateway: PaymentGateway, subscriptionId: number,
  build: (sub: Subscription, plans: Plans) => ChargeStep | null, card: CardRef): Promise<ChargeResult> {
  const prep = await db.tx(async (q) => {
    const plans = await loadPlans(q);
    const sub = await loadSubscription(q, subscriptionId, { forUpdate: true });
    if (!sub) throw new BillingError(`no subscription ${subscriptionId}`);
    const pending = await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE subscription_id = ${subscriptionId} AND status = 'pending'
      ORDER BY id LIMIT 1`);
    if (pending) return { kind: 'in_flight' as const, payment: toPaymentRow(pending) };
    const step = build(sub, plans);
    if (!step) return { kind: 'nothing' as const };
    const preview = applyInput(sub, { ...step, outcome: { ok: true } } as BillingInput, plans.book);
    if (preview.duplicate) return { kind: 'duplicate' as const };
    if (!preview.payments.length) {
      await writeTransition(q, preview);
      return { kind: 'applied' as const, transition: preview };
    }
    const p = preview.payments[0];
    const id = await writePayment(q, { ...p, status: 'pending', failureReason: null, settledAt: null }, plans.byId(sub.planId).currency);
    await q.query(sql`INSERT INTO payment_charge_intents (payment_id, user_id, input, gateway_token, off_session, created_at)
      VALUES (${id}, ${sub.userId}, ${JSON.stringify(step)}, ${card.token}, ${card.offSession}, ${new Date(step.at)})`);
    const row = await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${id}`);
    return { kind: 'charge' as const, payment: toPaymentRow(row) };
  });
  if (prep.kind !== 'charge') return prep;
  const p = prep.payment;
  const result = await gateway.charge({ idempotencyKey: p.idempotencyKey, token: card.token, amountCents: p.amountCents,
    currency: p.currency, offSession: card.offSession }).catch((): GatewayResult => ({ status: 'timeout' }));
  if (result.status === 'timeout') return { kind: 'pending', payment: p };
  return settle(db, p.id, result);
}

/** Applies the gateway's answer to a pending payment (under the subscription's lock); a payment settled meanwhile is left alone. */
async function settle(db: Db, paymentId: number, result: GatewayResult): Promise<Extract<ChargeResult, { kind: 'settled' }>> {
  const out: Extract<ChargeResult, { kind: 'settled' }> & { unapplied?: string } = await db.tx(async (q) => {
    const intent = await q.one<{ subscription_id: number; input: ChargeStep }>(sql`SELECT p.subscription_id, i.input
      FROM payments p JOIN payment_charge_intents i ON i.payment_id = p.id WHERE p.id = ${paymentId}`);
    if (!intent) throw new BillingError(`payment ${paymentId} has no charge intent`);
    const plans = await loadPlans(q);
    const sub = await loadSubscription(q, intent.subscription_id, { forUpdate: true });
    const row = (await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${paymentId} FOR UPDATE`))!;
    if (!sub || row.status !== 'pending') {
      return { kind: 'settled' as const, transition: { sub: sub!, events: [], payments: [], duplicate: true }, payment: toPaymentRow(row), result };
    }
    let tr: Transition;
    try {
      tr = applyInput(sub, { ...intent.input, outcome: outcomeOf(result) } as BillingInput, plans.book);
    } catch (err) {
      if (!(err instanceof BillingError)) throw err;
      // The state moved on while the gateway was deciding (nothing in the product does that: chargeLive refuses to start
      // a second charge, and checkout never expires a subscription with a pending payment). Record what the gateway
      // did — money may have moved — and leave the subscription alone, loudly, so an operator can refund it.
      const outcome = outcomeOf(result);
      await q.query(sql`UPDATE payments SET status = ${outcome.ok ? 'succeeded' : 'failed'}, failure_reason = ${outcome.ok ? null : outcome.reason},
        settled_at = created_at WHERE id = ${paymentId}`);
      const after = await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${paymentId}`);
      return { kind: 'settled' as const, transition: { sub, events: [], payments: [], duplicate: true }, payment: toPaymentRow(after), result,
        unapplied: `payment ${paymentId} settled as ${outcome.ok ? 'succeeded' : 'failed'} but not applied: ${err.message}` };
    }
    await writeTransition(q, tr);
    const after = await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${paymentId}`);
    return { kind: 'settled' as const, transition: tr, payment: toPaymentRow(after), result };
  });
  if (out.unapplied) throw new BillingError(out.unapplied);
  return out;
}

/**
 * Settles pending payments whose gateway call timed out: asks the gateway for the answer it gave that key, and when
 * it never received the request, sends it again with the same key (the gateway charges a key once). Payments younger
 * than `olderThanMs` are left to the request still handling them. Returns how many settled and how many still wait.
 */
export async function reconcilePending(db: Db, gateway: PaymentGateway, now: Date,
  opts: { userId?: number; olderThanMs?: number; limit?: number } = {}): Promise<{ settled: number; pending: number }> {
  const before = new Date(now.getTime() - (opts.olderThanMs ?? 0));
  const rows = await db.query<any>(sql`SELECT p.id, p.idempotency_key, p.amount_cents, p.currency, i.gateway_token, i.off_session
    FROM payments p JOIN payment_charge_intents i ON i.payment_id = p.id
    WHERE p.status = 'pending' AND p.created_at <= ${before} ${opts.userId !== undefined ? sql`AND p.user_id = ${opts.userId}` : sql``}
    ORDER BY p.created_at, p.id LIMIT ${opts.limit ?? 200}`);
  let settled = 0, pending = 0;
  const problems: string[] = [];
  for (const r of rows) {
    const ask = async (): Promise<GatewayResult> => (await gateway.lookup(r.idempotency_key))
      ?? gateway.charge({ idempotencyKey: r.idempotency_key, token: r.gateway_token, amountCents: r.amount_cents, currency: r.currency,
        offSession: r.off_session });
    const result = await ask().catch((): GatewayResult => ({ status: 'timeout' }));
    if (result.status === 'timeout') { pending++; continue; }
    try { await settle(db, r.id, result); } catch (err: any) { problems.push(err.message); }
    settled++;
  }
  if (problems.length) throw new BillingError(`reconciling pending payments: ${problems.join('; ')}`);
  return { settled, pending };
}

/** Refund (part of) a succeeded payment: through the gateway (key `refund:<payment key>`), then the machine's refund input. */
export async function refundLive(db: Db, gateway: PaymentGateway, paymentId: number, cents: number, at: Date): Promise<Transition | { pending: true }> {
  const p = await db.one<any>(sql`SELECT * FROM payments WHERE id = ${paymentId}`);
  if (!p) throw new BillingError(`no payment ${paymentId}`);
  if (p.status !== 'succeeded') throw new BillingError(`payment ${paymentId} is ${p.status}: only a succeeded payment is refunded`);
  const result = await gateway.refund({ idempotencyKey: `refund:${p.idempotency_key}`, chargeKey: p.idempotency_key, amountCents: cents,
    currency: p.currency }).catch((): GatewayResult => ({ status: 'timeout' }));
  if (result.status === 'timeout') return { pending: true };
  if (result.status !== 'succeeded') throw new BillingError(`refund of payment ${paymentId} failed: ${failureReason(result)}`);
  return db.tx(async (q) => applyLive(q, p.subscription_id, {
    type: 'refund', at: at.getTime(), cents,
    payment: {
      subscriptionId: p.subscription_id, userId: p.user_id, kind: p.kind, periodStart: p.period_start.getTime(), periodEnd: p.period_end.getTime(),
      attempt: p.attempt, amountCents: p.amount_cents, status: p.status, idempotencyKey: p.idempotency_key, failureReason: p.failure_reason,
      createdAt: p.created_at.getTime(), settledAt: ms(p.settled_at), refundedAt: ms(p.refunded_at), refundCents: p.refund_cents,
    },
  }));
}

// ── the card on file ─────────────────────────────────────────────────────────────────────────────────────────────

export interface CardOnFile { gateway: string; token: string; brand: string; last4: string; expMonth: number; expYear: number }

export async function cardOnFile(q: Queryable, userId: number): Promise<CardOnFile | undefined> {
  const r = await q.one<any>(sql`SELECT gateway, gateway_token, brand, last4, exp_month, exp_year FROM payment_methods WHERE user_id = ${userId}`);
  return r && { gateway: r.gateway, token: r.gateway_token, brand: r.brand, last4: r.last4, expMonth: r.exp_month, expYear: r.exp_year };
}

export async function saveCard(q: Queryable, userId: number, card: CardOnFile, at: Date): Promise<void> {
  await q.query(sql`INSERT INTO payment_methods (user_id, gateway, gateway_token, brand, last4, exp_month, exp_year, updated_at)
    VALUES (${userId}, ${card.gateway}, ${card.token}, ${card.brand}, ${card.last4}, ${card.expMonth}, ${card.expYear}, ${at})
    ON CONFLICT (user_id) DO UPDATE SET gateway = EXCLUDED.gateway, gateway_token = EXCLUDED.gateway_token, brand = EXCLUDED.brand,
      last4 = EXCLUDED.last4, exp_month = EXCLUDED.exp_month, exp_year = EXCLUDED.exp_year, updated_at = EXCLUDED.updated_at`);
}

// ── billing forms: one outcome per idempotency key ──────────────────────────────────────────────────────────────

export interface FormOutcome {
  status: number;
  location?: string;
  message?: string;
  /** false: nothing happened (a validation error): the key is released so the corrected form can use it. */
  store?: boolean;
}

export const FORM_KEY_RE = /^[A-Za-z0-9_-]{16,100}$/;

/**
 * Runs `fn` once per (user, idempotency key): the first request claims the key; a repeat — sequential or concurrent —
 * waits for the first to finish and gets its outcome (`repeat: true`) without running anything.
 */
export async function runOnce(db: Db, args: { userId: number; key: string; action: string; now: Date },
  fn: () => Promise<FormOutcome>, opts: { waitMs?: number } = {}): Promise<FormOutcome & { repeat: boolean }> {
  if (!FORM_KEY_RE.test(args.key)) throw new HttpError(400, 'idempotency_key: the form has no valid idempotency key; reload the page and submit again',
    { idempotency_key: 'missing or malformed: reload the form' });
  const claimed = await db.one(sql`INSERT INTO billing_requests (user_id, idempotency_key, action, created_at)
    VALUES (${args.userId}, ${args.key}, ${args.action}, ${args.now}) ON CONFLICT DO NOTHING RETURNING 1 AS ok`);
  if (!claimed) {
    const deadline = Date.now() + (opts.waitMs ?? 30_000);
    for (;;) {
      const row = await db.one<any>(sql`SELECT state, status_code, location, message FROM billing_requests
        WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`);
      if (!row) return runOnce(db, args, fn, opts); // the first request released the key (validation error, crash)
      if (row.state === 'done') return { status: row.status_code, location: row.location ?? undefined, message: row.message ?? undefined, repeat: true };
      if (Date.now() > deadline) throw new HttpError(409, 'This form is still being processed. Reload the page in a moment.');
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  let out: FormOutcome;
  try {
    out = await fn();
  } catch (err) {
    await db.query(sql`DELETE FROM billing_requests WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`).catch(() => {});
    throw err;
  }
  if (out.store === false) {
    await db.query(sql`DELETE FROM billing_requests WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`);
  } else {
    await db.query(sql`UPDATE billing_requests SET state = 'done', status_code = ${out.status}, location = ${out.location ?? null},
      message = ${out.message ?? null} WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`);
  }
  return { ...out, repeat: false };
}
