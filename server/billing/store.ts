// Live billing's one path to the database: a subscription row is loaded with the bookkeeping the state machine needs
// (anchor, dueAttempts, periodKeys, derived from the row and its payments exactly as the simulator holds them), locked
// FOR UPDATE, driven through openSubscription/applyInput (server/billing/machine.ts), and the resulting state, events
// and payments are written in the same transaction. Charges go through chargeLive: the payment row is written
// `pending` with its deterministic idempotency key before the gateway is asked, and settled by the machine once the
// gateway answers — or later, by reconcilePending, when it timed out. See server/billing/README.md ("Live billing").
import sql, { empty, join, raw, type Sql } from 'sql-template-tag';
import { noteLocalChange, readThrough, type ChangeCache, type ChangeFeed, type Db, type Queryable } from '../db/index.ts';
import { HttpError } from '../errors.ts';
import {
  applyInput, openSubscription, planBook, BillingError, MAX_ATTEMPTS, type BillingInput, type ChargeOutcome, type Payment, type Plan,
  type PlanBook, type Subscription, type SubscriptionEvent, type Transition,
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

// One cache per change feed (so per pool and database): a wrapped Db (closedMonthAware, a test's counting Db) shares
// its pool's feed, hence its cache.
const planCaches = new WeakMap<ChangeFeed, ChangeCache<Plans>>();

/**
 * The plans, from memory while the plans table has not changed (the change feed: migration 0022's notify trigger tells
 * every process at commit, whoever changed it — a migration, an operator's psql). The same rows loadPlans reads; a
 * checkout or a renewal batch no longer reads the table, which changes a few times a year.
 */
export function cachedPlans(db: Db): Promise<Plans> {
  let cache = planCaches.get(db.changes);
  if (!cache) planCaches.set(db.changes, (cache = new Map()));
  return readThrough(db, cache, 'plans', ['plans'], () => loadPlans(db));
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

const dateOrNull = (v: number | null) => (v === null ? null : new Date(v));
export type PaymentIn = Payment & { currency: string };

/** The payments upsert by idempotency key over arrays (any number in one statement): WITH parts to put in a statement
 *  and the rows it wrote (a subquery: the inserted and the updated payments, every column). A key already in
 *  payment_keys (any month, migration 0025) updates its payment's outcome if that payment is of the same subscription,
 *  else it is left alone and returns no row; a new key inserts its payment, whose insert claims the key. The shape
 *  writeTransition and the batch (batch.ts) both write. */
export function upsertPaymentsSql(p: PaymentIn[]): { parts: Sql; rows: Sql } {
  const parts = sql`pay_in AS (SELECT * FROM unnest(${p.map((x) => x.userId)}::bigint[], ${p.map((x) => x.subscriptionId)}::bigint[], ${p.map((x) => x.kind)}::text[],
      ${p.map((x) => dateOrNull(x.periodStart))}::timestamptz[], ${p.map((x) => dateOrNull(x.periodEnd))}::timestamptz[], ${p.map((x) => x.attempt)}::smallint[],
      ${p.map((x) => x.amountCents)}::int[], ${p.map((x) => x.currency)}::text[], ${p.map((x) => x.status)}::text[], ${p.map((x) => x.idempotencyKey)}::text[],
      ${p.map((x) => x.failureReason)}::text[], ${p.map((x) => dateOrNull(x.createdAt))}::timestamptz[], ${p.map((x) => dateOrNull(x.settledAt))}::timestamptz[],
      ${p.map((x) => dateOrNull(x.refundedAt))}::timestamptz[], ${p.map((x) => x.refundCents)}::int[])
      AS x(user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, currency, status, idempotency_key, failure_reason,
        created_at, settled_at, refunded_at, refund_cents)),
    pay_upd AS (UPDATE payments p SET status = i.status, failure_reason = i.failure_reason, settled_at = i.settled_at,
        refunded_at = i.refunded_at, refund_cents = i.refund_cents
      FROM pay_in i JOIN payment_keys k ON k.idempotency_key = i.idempotency_key
      WHERE p.id = k.payment_id AND p.created_at = k.created_at AND p.subscription_id = i.subscription_id RETURNING p.*),
    pay_ins AS (INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, currency, status,
        idempotency_key, failure_reason, created_at, settled_at, refunded_at, refund_cents)
      SELECT * FROM pay_in i WHERE NOT EXISTS (SELECT 1 FROM payment_keys k WHERE k.idempotency_key = i.idempotency_key) RETURNING *)`;
  return { parts, rows: sql`(SELECT * FROM pay_ins UNION ALL SELECT * FROM pay_upd)` };
}

/** The events insert over arrays, in the given order (ids follow it: reports order events by (at, id)). */
export function insertEventsSql(e: SubscriptionEvent[]): Sql {
  return sql`INSERT INTO subscription_events (subscription_id, user_id, at, type, from_status, to_status, plan_id, mrr_cents, data)
    SELECT sid, uid, at, type, fs, ts, pid, mrr, data FROM unnest(${e.map((x) => x.subscriptionId)}::bigint[], ${e.map((x) => x.userId)}::bigint[],
      ${e.map((x) => new Date(x.at))}::timestamptz[], ${e.map((x) => x.type)}::text[], ${e.map((x) => x.fromStatus)}::text[],
      ${e.map((x) => x.toStatus)}::text[], ${e.map((x) => x.planId)}::int[], ${e.map((x) => x.mrrCents)}::numeric[],
      ${e.map((x) => JSON.stringify(x.data))}::jsonb[]) WITH ORDINALITY AS x(sid, uid, at, type, fs, ts, pid, mrr, data, n)
    ORDER BY n`;
}

/** The data-modifying parts writing a transition's subscription row (inserted when `isNew`) and its events in order. */
function transitionParts(tr: Transition, isNew = false): Sql[] {
  const s = tr.sub;
  const parts: Sql[] = [];
  // this process's caches of the user's access drop it now (0021's trigger tells every process at commit)
  if (isNew || !tr.duplicate) noteLocalChange(`subscriptions:${s.userId}`);
  if (isNew) {
    parts.push(sql`INSERT INTO subscriptions (id, user_id, plan_id, status, created_at, current_period_start, current_period_end,
        cancel_at_period_end, pending_plan_id, ended_at, end_reason) OVERRIDING SYSTEM VALUE
      VALUES (${s.id}, ${s.userId}, ${s.planId}, ${s.status}, ${dateOrNull(s.createdAt)}, ${dateOrNull(s.periodStart)}, ${dateOrNull(s.periodEnd)},
        ${s.cancelAtPeriodEnd}, ${s.pendingPlanId}, ${dateOrNull(s.endedAt)}, ${s.endReason})`);
  } else if (!tr.duplicate) {
    parts.push(sql`UPDATE subscriptions SET plan_id = ${s.planId}, status = ${s.status}, current_period_start = ${dateOrNull(s.periodStart)},
        current_period_end = ${dateOrNull(s.periodEnd)}, cancel_at_period_end = ${s.cancelAtPeriodEnd}, pending_plan_id = ${s.pendingPlanId},
        ended_at = ${dateOrNull(s.endedAt)}, end_reason = ${s.endReason}
      WHERE id = ${s.id}`);
  }
  if (tr.events.length) parts.push(insertEventsSql(tr.events));
  return parts;
}

/**
 * Writes a transition in one statement: the subscription row (inserted when `isNew`), its events in order, its payments
 * (upserted by key; returned as rows). Data-modifying WITH parts all run, to completion, in that one statement;
 * `before`: more of them, written in the same statement (a checkout's claim of its form key).
 */
export async function writeTransition(q: Queryable, tr: Transition, opts: { isNew?: boolean; before?: Sql[] } = {}): Promise<{ payments: PaymentRow[] }> {
  const s = tr.sub;
  const parts = [...opts.before ?? [], ...transitionParts(tr, opts.isNew)];
  const p = tr.payments.map((x) => ({ ...x, currency: 'USD' }));
  if (!p.length && !parts.length) return { payments: [] };
  const named = parts.map((x, i) => sql`${raw(`w${i}`)} AS (${x})`);
  let statement: Sql;
  if (p.length) {
    const up = upsertPaymentsSql(p);
    statement = sql`WITH ${join([...named, up.parts], ', ')} SELECT ${paymentColumns} FROM ${up.rows} AS p`;
  } else {
    const last = parts.pop()!;
    statement = named.length > 1 ? sql`WITH ${join(named.slice(0, -1), ', ')} ${last}` : last;
  }
  const rows = await q.query(statement);
  if (rows.length !== p.length) throw new BillingError(`a payment key of subscription ${s.id} belongs to another subscription`);
  return { payments: p.length ? rows.map(toPaymentRow) : [] };
}

/**
 * A new subscription (signup or reactivation) for `userId` on `planId`, `incomplete`, with its `created` event. Run
 * inside a transaction; the schema's one-live-subscription-per-customer index refuses a second live one. `id`: a value
 * of the subscriptions id sequence the caller already took (else one is taken here).
 */
export async function openLive(q: Queryable, args: { userId: number; planId: number; at: Date; id?: number }, plans?: Plans): Promise<Transition> {
  plans ??= await loadPlans(q);
  const id = args.id ?? (await q.one<{ id: number }>(sql`SELECT ${nextSubscriptionId} AS id`))!.id;
  const tr = openSubscription({ id, userId: args.userId, plan: plans.byId(args.planId), at: args.at.getTime() }, plans.book);
  await writeTransition(q, tr, { isNew: true });
  return tr;
}

/** A new value of the subscriptions id sequence (taken ahead, so a new subscription's rows are written in one statement). */
export const nextSubscriptionId = sql`nextval(pg_get_serial_sequence('subscriptions', 'id'))`;

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
  id: Number(r.id), userId: Number(r.user_id), subscriptionId: Number(r.subscription_id), kind: r.kind, status: r.status, amountCents: r.amount_cents,
  currency: r.currency, idempotencyKey: r.idempotency_key, failureReason: r.failure_reason, attempt: r.attempt, createdAt: r.created_at,
});

export function outcomeOf(result: GatewayResult): ChargeOutcome {
  return result.status === 'succeeded' ? { ok: true } : { ok: false, reason: failureReason(result) ?? 'processing_error' };
}

/** The locked subscription (loadSubscription) and its pending payment if any — a charge of it still in flight. */
async function loadForCharge(q: Queryable, subscriptionId: number): Promise<{ sub: Subscription; pending: PaymentRow | undefined }> {
  const sub = await loadSubscription(q, subscriptionId, { forUpdate: true });
  if (!sub) throw new BillingError(`no subscription ${subscriptionId}`);
  const pending = await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE subscription_id = ${subscriptionId} AND status = 'pending'
    ORDER BY id LIMIT 1`);
  return { sub, pending: pending && toPaymentRow(pending) };
}

type Prepared = { kind: 'charge'; payment: PaymentRow; step: ChargeStep } | { kind: 'applied'; transition: Transition } | { kind: 'duplicate' };

/**
 * Step 1 of a charge, inside the caller's transaction, for `sub` locked and with no payment pending: the machine previews
 * `step` with a success; a step that charges nothing is applied right away; otherwise the preview's payment row is
 * written `pending` (the machine's key, amount and period) with its charge intent (the step, the card), in one statement.
 * `before`: the data-modifying parts to write in that same statement (a checkout's claim and new subscription; then
 * the statement needs no transaction around it).
 */
async function prepareCharge(q: Queryable, sub: Subscription, step: ChargeStep, card: CardRef, plans: Plans, before: Sql[] = []): Promise<Prepared> {
  const preview = applyInput(sub, { ...step, outcome: { ok: true } } as BillingInput, plans.book);
  if (preview.duplicate || !preview.payments.length) {
    if (!preview.duplicate || before.length) await writeTransition(q, preview, { before });
    return preview.duplicate ? { kind: 'duplicate' } : { kind: 'applied', transition: preview };
  }
  const p: PaymentIn = { ...preview.payments[0]!, status: 'pending', failureReason: null, settledAt: null, currency: plans.byId(sub.planId).currency };
  const lead = before.length ? join(before.map((x, i) => sql`${raw(`b${i}`)} AS (${x}), `), '') : empty;
  const up = upsertPaymentsSql([p]);
  const row = await q.one(sql`WITH ${lead}${up.parts}, p AS (SELECT ${paymentColumns} FROM ${up.rows} AS p),
      i AS (INSERT INTO payment_charge_intents (payment_id, user_id, input, gateway_token, off_session, created_at)
        SELECT id, user_id, ${JSON.stringify(step)}::jsonb, ${card.token}::text, ${card.offSession}::boolean, ${new Date(step.at)}::timestamptz FROM p)
    SELECT * FROM p`);
  if (!row) throw new BillingError(`payment ${p.idempotencyKey} belongs to another subscription`);
  return { kind: 'charge', payment: toPaymentRow(row), step };
}

const askGateway = (gateway: PaymentGateway, p: PaymentRow, card: CardRef) => gateway.charge({ idempotencyKey: p.idempotencyKey,
  token: card.token, amountCents: p.amountCents, currency: p.currency, offSession: card.offSession }).catch((): GatewayResult => ({ status: 'timeout' }));

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
  const plans = await cachedPlans(db);
  const prep = await db.tx(async (q): Promise<Prepared | { kind: 'in_flight'; payment: PaymentRow } | { kind: 'nothing' }> => {
    const { sub, pending } = await loadForCharge(q, subscriptionId);
    if (pending) return { kind: 'in_flight', payment: pending };
    const step = build(sub, plans);
    if (!step) return { kind: 'nothing' };
    return prepareCharge(q, sub, step, card, plans);
  });
  if (prep.kind !== 'charge') return prep;
  const result = await askGateway(gateway, prep.payment, card);
  if (result.status === 'timeout') return { kind: 'pending', payment: prep.payment };
  return settle(db, prep.payment.id, result, { subscription_id: subscriptionId, input: prep.step });
}

type Settled = Extract<ChargeResult, { kind: 'settled' }> & { unapplied?: string };

/** Applies the gateway's answer to a pending payment (under the subscription's lock); a payment settled meanwhile is left alone. */
async function settle(db: Db, paymentId: number, result: GatewayResult, intent?: { subscription_id: number; input: ChargeStep }): Promise<Settled> {
  const plans = await cachedPlans(db);
  const out = await db.tx((q) => settleIn(q, plans, paymentId, result, intent));
  if (out.unapplied) throw new BillingError(out.unapplied);
  return out;
}

/** settle inside the caller's transaction; `intent` (the subscription and the step), when the caller knows it, saves reading it. */
async function settleIn(q: Queryable, plans: Plans, paymentId: number, result: GatewayResult,
  intent?: { subscription_id: number; input: ChargeStep }): Promise<Settled> {
  intent ??= await q.one<{ subscription_id: number; input: ChargeStep }>(sql`SELECT p.subscription_id, i.input
    FROM payments p JOIN payment_charge_intents i ON i.payment_id = p.id WHERE p.id = ${paymentId}`);
  if (!intent) throw new BillingError(`payment ${paymentId} has no charge intent`);
  const sub = await loadSubscription(q, intent.subscription_id, { forUpdate: true });
  const row = toPaymentRow((await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${paymentId} FOR UPDATE`))!);
  if (!sub || row.status !== 'pending') {
    return { kind: 'settled', transition: { sub: sub!, events: [], payments: [], duplicate: true }, payment: row, result };
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
    const after = await q.one(sql`UPDATE payments SET status = ${outcome.ok ? 'succeeded' : 'failed'}, failure_reason = ${outcome.ok ? null : outcome.reason},
      settled_at = created_at WHERE id = ${paymentId} RETURNING ${paymentColumns}`);
    return { kind: 'settled', transition: { sub, events: [], payments: [], duplicate: true }, payment: toPaymentRow(after), result,
      unapplied: `payment ${paymentId} settled as ${outcome.ok ? 'succeeded' : 'failed'} but not applied: ${err.message}` };
  }
  const { payments } = await writeTransition(q, tr);
  const after = payments.find((p) => p.id === paymentId) ?? toPaymentRow(await q.one(sql`SELECT ${paymentColumns} FROM payments WHERE id = ${paymentId}`));
  return { kind: 'settled', transition: tr, payment: after, result };
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

const saveCardSql = (userId: number, card: CardOnFile, at: Date) => sql`INSERT INTO payment_methods (user_id, gateway, gateway_token,
    brand, last4, exp_month, exp_year, updated_at)
  VALUES (${userId}, ${card.gateway}, ${card.token}, ${card.brand}, ${card.last4}, ${card.expMonth}, ${card.expYear}, ${at})
  ON CONFLICT (user_id) DO UPDATE SET gateway = EXCLUDED.gateway, gateway_token = EXCLUDED.gateway_token, brand = EXCLUDED.brand,
    last4 = EXCLUDED.last4, exp_month = EXCLUDED.exp_month, exp_year = EXCLUDED.exp_year, updated_at = EXCLUDED.updated_at`;

export async function saveCard(q: Queryable, userId: number, card: CardOnFile, at: Date): Promise<void> {
  await q.query(saveCardSql(userId, card, at));
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

type FormArgs = { userId: number; key: string; action: string; now: Date };

/** 400 unless the form carries a well-formed idempotency key. */
export function checkFormKey(key: string): void {
  if (!FORM_KEY_RE.test(key)) throw new HttpError(400, 'idempotency_key: the form has no valid idempotency key; reload the page and submit again',
    { idempotency_key: 'missing or malformed: reload the form' });
}

/** The claim of a form key; as it is, a repeat fails on the key (billing_requests_pkey), with the statement it is part of. */
const claimRowSql = (args: FormArgs) => sql`INSERT INTO billing_requests (user_id, idempotency_key, action, created_at)
  VALUES (${args.userId}, ${args.key}, ${args.action}, ${args.now})`;
const claimSql = (args: FormArgs) => sql`${claimRowSql(args)} ON CONFLICT DO NOTHING`;
const releaseSql = (args: FormArgs) => sql`DELETE FROM billing_requests WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`;
const finishSql = (args: FormArgs, out: FormOutcome) => sql`UPDATE billing_requests SET state = 'done', status_code = ${out.status},
  location = ${out.location ?? null}, message = ${out.message ?? null} WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`;

/** A key another request claimed: wait for its outcome (or, when it released the key, run `again`). */
export async function firstOutcome(db: Db, args: FormArgs, again: () => Promise<FormOutcome>,
  waitMs = 30_000): Promise<FormOutcome & { repeat: boolean }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const row = await db.one<any>(sql`SELECT state, status_code, location, message FROM billing_requests
      WHERE user_id = ${args.userId} AND idempotency_key = ${args.key}`);
    if (!row) return { repeat: false, ...(await again()) }; // the first request released the key (validation error, crash)
    if (row.state === 'done') return { status: row.status_code, location: row.location ?? undefined, message: row.message ?? undefined, repeat: true };
    if (Date.now() > deadline) throw new HttpError(409, 'This form is still being processed. Reload the page in a moment.');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Runs `fn` once per (user, idempotency key): the first request claims the key; a repeat — sequential or concurrent —
 * waits for the first to finish and gets its outcome (`repeat: true`) without running anything.
 */
export async function runOnce(db: Db, args: FormArgs, fn: () => Promise<FormOutcome>, opts: { waitMs?: number } = {}): Promise<FormOutcome & { repeat: boolean }> {
  checkFormKey(args.key);
  const claimed = await db.one(sql`${claimSql(args)} RETURNING 1 AS ok`);
  if (!claimed) return firstOutcome(db, args, () => runOnce(db, args, fn, opts), opts.waitMs);
  let out: FormOutcome;
  try {
    out = await fn();
  } catch (err) {
    await db.query(releaseSql(args)).catch(() => {});
    throw err;
  }
  await db.query(out.store === false ? releaseSql(args) : finishSql(args, out));
  return { ...out, repeat: false };
}

/**
 * The checkout (POST /subscribe), runOnce and chargeLive folded into two commits around the gateway call, so a
 * checkout is four commits (the gateway's card, the first write, the gateway's charge, the second) instead of eight:
 *  1. claim the form key (a concurrent repeat waits on it, then finds it taken), open the subscription (or take the
 *     customer's `incomplete` one: the next attempt; another plan or every attempt used expires it), write the first
 *     payment `pending` with its key and charge intent; commit — before the gateway hears of it. For a customer with
 *     no live subscription (`newId`: the id the new one gets, taken ahead) that is one statement, with no transaction
 *     around it (a repeat fails it on the key); otherwise one transaction;
 *  2. the gateway charges that key (no transaction open);
 *  3. one transaction: the machine applies the answer (chargeLive's step 3), the card goes on file when the charge
 *     succeeded or is still pending, and the key's outcome is stored.
 * `liveId`: the customer's live subscription as read before (an `incomplete` one), undefined when there was none; the
 * schema's one-live-subscription index refuses a second one opened meanwhile (409, nothing stored). The card is
 * attached at the gateway before. A repeat of the key gets the first outcome, as with runOnce.
 */
export async function checkoutLive(db: Db, gateway: PaymentGateway,
  args: FormArgs & { planId: number; liveId?: number; newId?: number; card: CardOnFile },
  outcome: (r: ChargeResult) => FormOutcome): Promise<FormOutcome & { repeat: boolean }> {
  checkFormKey(args.key);
  const plans = await cachedPlans(db);
  const card: CardRef = { token: args.card.token, offSession: false };
  const at = args.now.getTime();
  const open = (id: number) => openSubscription({ id, userId: args.userId, plan: plans.byId(args.planId), at }, plans.book);
  type First = { kind: 'repeat' } | { kind: 'done'; out: FormOutcome } | Prepared;
  let first: First;
  try {
    first = args.liveId === undefined && args.newId !== undefined ? await (async (): Promise<First> => {
      const opened = open(args.newId!);
      try {
        return await prepareCharge(db, opened.sub, { type: 'initial_charge', at, attempt: opened.sub.dueAttempts + 1 }, card, plans,
          [claimRowSql(args), ...transitionParts(opened, true)]);
      } catch (err: any) {
        // the key claimed by another request (a repeat), or another live subscription of the customer opened meanwhile
        // (whichever the statement met first): firstOutcome tells them apart — the first one's outcome, or, when the
        // key is not taken, a run through the transaction below, which answers the second 409
        if (err?.code === '23505') return { kind: 'repeat' };
        throw err;
      }
    })() : await db.tx(async (q): Promise<First> => {
      // the claim also takes the id a new subscription gets (a value of the sequence is cheap; a round trip is not)
      const claim = await q.one<{ next_id: string }>(sql`${claimSql(args)} RETURNING ${nextSubscriptionId} AS next_id`);
      if (!claim) return { kind: 'repeat' };
      const done = async (out: FormOutcome): Promise<First> => { await q.query(finishSql(args, out)); return { kind: 'done', out }; };
      let sub: Subscription | undefined;
      if (args.liveId !== undefined) {
        const live = await loadForCharge(q, args.liveId);
        if (live.sub.status === 'active' || live.sub.status === 'past_due') return done({ status: 303, location: '/account?done=already' });
        // a first payment still pending at the gateway decides this subscription: never expire it under that payment
        if (live.pending) return done(outcome({ kind: 'in_flight', payment: live.pending }));
        if (live.sub.status === 'incomplete') {
          // another plan, or every attempt used: the unpaid subscription expires and a new one starts
          if (live.sub.planId !== args.planId || live.sub.dueAttempts >= MAX_ATTEMPTS) {
            await writeTransition(q, applyInput(live.sub, { type: 'expire', at }, plans.book));
          } else sub = live.sub;
        }
      }
      if (sub) return prepareCharge(q, sub, { type: 'initial_charge', at, attempt: sub.dueAttempts + 1 }, card, plans);
      const opened = open(Number(claim.next_id));
      return prepareCharge(q, opened.sub, { type: 'initial_charge', at, attempt: opened.sub.dueAttempts + 1 }, card, plans, transitionParts(opened, true));
    });
  } catch (err: any) {
    if (err?.code === '23505') return { status: 409, message: 'Another checkout of yours is in progress. Reload the page in a moment.', repeat: false };
    if (err instanceof BillingError) return { status: 409, message: `That change is not possible now: ${err.message}.`, repeat: false };
    throw err;
  }
  // run again (the first released the key): with a new subscription id, the one taken may be used by now
  if (first.kind === 'repeat') return firstOutcome(db, args, () => checkoutLive(db, gateway, { ...args, newId: undefined }, outcome));
  if (first.kind === 'done') return { ...first.out, repeat: false };
  if (first.kind !== 'charge') {
    const out = outcome(first);
    await db.query(finishSql(args, out));
    return { ...out, repeat: false };
  }
  const result = await askGateway(gateway, first.payment, card);
  try {
    const { out, unapplied } = await db.tx(async (q) => {
      let r: ChargeResult = { kind: 'pending', payment: first.payment };
      let unapplied: string | undefined;
      if (result.status !== 'timeout') ({ unapplied, ...r } = await settleIn(q, plans, first.payment.id, result, { subscription_id: first.payment.subscriptionId, input: first.step }));
      const out = outcome(r);
      // the card goes on file in the statement that stores the outcome
      const keep = !unapplied && (result.status === 'succeeded' || result.status === 'timeout');
      await q.query(keep ? sql`WITH card AS (${saveCardSql(args.userId, args.card, args.now)}) ${finishSql(args, out)}` : finishSql(args, out));
      return { out, unapplied };
    });
    if (unapplied) throw new BillingError(unapplied);
    return { ...out, repeat: false };
  } catch (err) {
    // as runOnce: the key is released, a resubmit finds the payment pending (in flight) or settled
    await db.query(releaseSql(args)).catch(() => {});
    throw err;
  }
}
