// Charging many due steps at once (renewals and dunning retries of the billing jobs): chargeLive's protocol
// (server/billing/store.ts) applied to a batch, so a day of renewals at the 1M-customer scale costs a few statements
// per batch instead of two dozen round trips and two commits per subscription:
//   A. one transaction: lock the batch's subscriptions (FOR UPDATE SKIP LOCKED: rows another runner holds are left
//      to it), load them as loadSubscription does, skip those with a pending payment (in flight), derive each step
//      from the locked state, preview it with the machine; steps that charge nothing (a period end that cancels) are
//      written at once; the others get their payment row written `pending` (the machine's deterministic key) with a
//      charge intent — all as set-based statements — and commit;
//   B. the gateway is asked for each pending row, with that key, no transaction open: the whole batch in one call
//      where the gateway takes many (chargeMany: the test gateway writes its ledger rows in one statement), else a few
//      at a time;
//   C. one transaction: lock the answered subscriptions again, apply each step with its answer through the machine,
//      write the states, events and settled payments as set-based statements. A timeout or an error leaves the row
//      pending: billing.reconcile-pending settles it (it asks the gateway what it answered that key, or sends the same
//      key again), exactly as for a single chargeLive.
// The rows written are the ones writeTransition writes; a killed run leaves at worst pending rows (reconciled), and a
// concurrent runner either skips the locked rows or finds them pending or already stepped (never charged twice).
import sql from 'sql-template-tag';
import { noteLocalChange, type Db, type Queryable } from '../db/index.ts';
import { applyInput, BillingError, type BillingInput, type Subscription, type Transition } from './machine.ts';
import { cachedPlans, insertEventsSql, outcomeOf, periodKeyPrefix, upsertPaymentsSql, type ChargeStep, type PaymentIn } from './store.ts';
import type { GatewayResult, PaymentGateway } from './gateway.ts';

/** Subscriptions by id, locked, as loadSubscription builds them (anchor, dueAttempts, periodKeys from the rows). */
export async function loadSubscriptionsLocked(q: Queryable, ids: number[], opts: { skipLocked?: boolean } = {}): Promise<Map<number, Subscription>> {
  const rows = await q.query<any>(sql`SELECT id, user_id, plan_id, status, created_at, current_period_start, current_period_end,
      cancel_at_period_end, pending_plan_id, ended_at, end_reason FROM subscriptions WHERE id = ANY(${ids}::bigint[])
    ORDER BY id FOR UPDATE ${opts.skipLocked ? sql`SKIP LOCKED` : sql``}`);
  const out = new Map<number, Subscription>();
  if (!rows.length) return out;
  const prefixes = rows.map((r) => periodKeyPrefix(r.id, r.current_period_start.getTime()));
  const keys = await q.query<{ subscription_id: number; idempotency_key: string; kind: string; attempt: number }>(sql`
    SELECT p.subscription_id, p.idempotency_key, p.kind, p.attempt
    FROM unnest(${rows.map((r) => r.id)}::bigint[], ${prefixes}::text[]) AS x(id, prefix)
    JOIN payments p ON p.subscription_id = x.id AND starts_with(p.idempotency_key, x.prefix) AND p.status <> 'pending'
    ORDER BY p.created_at, p.id`);
  const bySub = new Map<number, typeof keys>();
  for (const k of keys) { const id = Number(k.subscription_id); if (!bySub.has(id)) bySub.set(id, []); bySub.get(id)!.push(k); }
  for (const row of rows) {
    const id = Number(row.id);
    const ks = bySub.get(id) ?? [];
    const dueKind = row.status === 'incomplete' ? 'initial' : row.status === 'past_due' ? 'renewal' : null;
    const dueAttempts = dueKind ? Math.max(0, ...ks.filter((k) => k.kind === dueKind && !k.idempotency_key.includes(':upgrade:')).map((k) => k.attempt)) : 0;
    out.set(id, {
      id, userId: Number(row.user_id), planId: row.plan_id, status: row.status, createdAt: row.created_at.getTime(),
      anchor: row.created_at.getTime(), periodStart: row.current_period_start.getTime(), periodEnd: row.current_period_end.getTime(),
      cancelAtPeriodEnd: row.cancel_at_period_end, pendingPlanId: row.pending_plan_id, endedAt: row.ended_at?.getTime() ?? null,
      endReason: row.end_reason, dueAttempts, periodKeys: ks.map((k) => k.idempotency_key),
    });
  }
  return out;
}

const d = (v: number | null) => (v === null ? null : new Date(v));

/** writeTransition for many transitions (none new), as set-based statements: states, events in order, payments by key. */
export async function writeTransitions(q: Queryable, trs: Transition[]): Promise<void> {
  const live = trs.filter((t) => !t.duplicate);
  if (!live.length) return;
  const s = live.map((t) => t.sub);
  // s.id = ANY(ids) beside the join: the planner probes the primary key instead of hashing every subscription (the
  // unnest's row count is unknown to it; at 1M customers the seq scan was most of a batch)
  noteLocalChange(...s.map((x) => `subscriptions:${x.userId}`)); // this process's caches of access (0021 tells the others)
  await q.query(sql`UPDATE subscriptions AS s SET plan_id = x.plan_id, status = x.status, current_period_start = x.ps, current_period_end = x.pe,
      cancel_at_period_end = x.cape, pending_plan_id = x.ppid, ended_at = x.ended_at, end_reason = x.end_reason
    FROM unnest(${s.map((x) => x.id)}::bigint[], ${s.map((x) => x.planId)}::int[], ${s.map((x) => x.status)}::text[],
      ${s.map((x) => d(x.periodStart))}::timestamptz[], ${s.map((x) => d(x.periodEnd))}::timestamptz[], ${s.map((x) => x.cancelAtPeriodEnd)}::boolean[],
      ${s.map((x) => x.pendingPlanId)}::int[], ${s.map((x) => d(x.endedAt))}::timestamptz[], ${s.map((x) => x.endReason)}::text[])
      AS x(id, plan_id, status, ps, pe, cape, ppid, ended_at, end_reason)
    WHERE s.id = x.id AND s.id = ANY(${s.map((x) => x.id)}::bigint[])`);
  const e = live.flatMap((t) => t.events);
  if (e.length) await q.query(insertEventsSql(e));
  const p = live.flatMap((t) => t.payments);
  if (p.length) await upsertPayments(q, p.map((x) => ({ ...x, currency: 'USD' })));
}

async function upsertPayments(q: Queryable, p: PaymentIn[]): Promise<{ id: number; idempotency_key: string }[]> {
  const up = upsertPaymentsSql(p);
  const rows = await q.query<{ id: number; idempotency_key: string }>(sql`WITH ${up.parts} SELECT id, idempotency_key FROM ${up.rows} AS p`);
  if (rows.length !== p.length) throw new BillingError('a payment key of this batch belongs to another subscription');
  return rows;
}

export interface BatchItem {
  subscriptionId: number;
  token: string;
  /** The step from the locked state, or null when it is no longer due (another runner moved the subscription on). */
  build: (s: Subscription) => ChargeStep | null;
}

export type BatchOutcome =
  | { kind: 'settled' | 'applied'; transition: Transition }
  | { kind: 'pending' | 'in_flight' | 'locked' | 'duplicate' | 'nothing' };

/**
 * Charges a batch of due steps (see the header). `closedBefore`: a transaction that writes a step dated before this
 * instant also bumps history_epoch (the marts' closed months change). Returns each subscription's outcome.
 */
export async function chargeBatch(db: Db, gateway: PaymentGateway, items: BatchItem[],
  opts: { concurrency?: number; closedBefore: Date; onTrouble?: () => boolean }): Promise<Map<number, BatchOutcome>> {
  const out = new Map<number, BatchOutcome>();
  const byId = new Map(items.map((i) => [i.subscriptionId, i]));
  const bump = async (q: Queryable, trs: Transition[]) => {
    const before = opts.closedBefore.getTime();
    if (trs.some((t) => !t.duplicate && (t.events.some((e) => e.at < before) || t.payments.some((p) => p.createdAt < before)))) {
      await q.query(sql`UPDATE history_epoch SET epoch = epoch + 1, changed_at = now(), reason = 'billing jobs: steps dated in a closed month'`);
    }
  };
  // A: lock, decide, write pending rows (and the steps that charge nothing)
  const plans = await cachedPlans(db);
  const charges = await db.tx(async (q) => {
    const subs = await loadSubscriptionsLocked(q, [...byId.keys()], { skipLocked: true });
    const pending = new Set((await q.query<{ id: number }>(sql`SELECT DISTINCT subscription_id AS id FROM payments
      WHERE subscription_id = ANY(${[...subs.keys()]}::bigint[]) AND status = 'pending'`)).map((r) => Number(r.id)));
    const applied: Transition[] = [];
    const toCharge: { item: BatchItem; step: ChargeStep; payment: PaymentIn }[] = [];
    for (const item of items) {
      const s = subs.get(item.subscriptionId);
      if (!s) { out.set(item.subscriptionId, { kind: 'locked' }); continue; }
      if (pending.has(s.id)) { out.set(s.id, { kind: 'in_flight' }); continue; }
      const step = item.build(s);
      if (!step) { out.set(s.id, { kind: 'nothing' }); continue; }
      const preview = applyInput(s, { ...step, outcome: { ok: true } } as BillingInput, plans.book);
      if (preview.duplicate) { out.set(s.id, { kind: 'duplicate' }); continue; }
      if (!preview.payments.length) { applied.push(preview); out.set(s.id, { kind: 'applied', transition: preview }); continue; }
      const p = preview.payments[0];
      toCharge.push({ item, step, payment: { ...p, status: 'pending', failureReason: null, settledAt: null, currency: plans.byId(s.planId).currency } });
    }
    await writeTransitions(q, applied);
    await bump(q, applied);
    if (!toCharge.length) return [];
    const ids = await upsertPayments(q, toCharge.map((c) => c.payment));
    const idByKey = new Map(ids.map((r) => [r.idempotency_key, Number(r.id)]));
    const rows = toCharge.map((c) => ({ ...c, paymentId: idByKey.get(c.payment.idempotencyKey)! }));
    await q.query(sql`INSERT INTO payment_charge_intents (payment_id, user_id, input, gateway_token, off_session, created_at)
      SELECT * FROM unnest(${rows.map((r) => r.paymentId)}::bigint[], ${rows.map((r) => r.payment.userId)}::bigint[],
        ${rows.map((r) => JSON.stringify(r.step))}::jsonb[], ${rows.map((r) => r.item.token)}::text[],
        ${rows.map(() => true)}::boolean[], ${rows.map((r) => new Date(r.step.at))}::timestamptz[])`);
    return rows;
  });
  // B: the gateway — the whole batch in one call where it takes many (chargeMany), else a few at a time; trouble
  // (timeout, error, unreachable) stops sending more
  const answers = new Map<number, GatewayResult>();
  const request = (c: (typeof charges)[number]) => ({ idempotencyKey: c.payment.idempotencyKey, token: c.item.token,
    amountCents: c.payment.amountCents, currency: c.payment.currency, offSession: true });
  if (gateway.chargeMany && charges.length && !opts.onTrouble?.()) {
    const rs = await gateway.chargeMany(charges.map(request)).catch((): GatewayResult[] => charges.map(() => ({ status: 'timeout' })));
    charges.forEach((c, i) => { if (rs[i]!.status !== 'timeout') answers.set(c.paymentId, rs[i]!); });
  }
  let next = gateway.chargeMany ? charges.length : 0;
  const worker = async () => {
    while (next < charges.length && !opts.onTrouble?.()) {
      const c = charges[next++];
      const r = await gateway.charge(request(c)).catch((): GatewayResult => ({ status: 'timeout' }));
      if (r.status !== 'timeout') answers.set(c.paymentId, r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, opts.concurrency ?? 8), charges.length) }, worker));
  for (const c of charges) if (!answers.has(c.paymentId)) out.set(c.item.subscriptionId, { kind: 'pending' });
  const answered = charges.filter((c) => answers.has(c.paymentId));
  if (!answered.length) return out;
  // C: apply the answers under the row locks
  await db.tx(async (q) => {
    const subs = await loadSubscriptionsLocked(q, answered.map((c) => c.item.subscriptionId));
    const still = new Set((await q.query<{ id: number }>(sql`SELECT id FROM payments WHERE id = ANY(${answered.map((c) => c.paymentId)}::bigint[])
      AND status = 'pending' FOR UPDATE`)).map((r) => Number(r.id)));
    const trs: Transition[] = [];
    for (const c of answered) {
      const s = subs.get(c.item.subscriptionId);
      // settled meanwhile (the reconciler got there first): its outcome is written already
      if (!s || !still.has(c.paymentId)) { out.set(c.item.subscriptionId, { kind: 'duplicate' }); continue; }
      try {
        const tr = applyInput(s, { ...c.step, outcome: outcomeOf(answers.get(c.paymentId)!) } as BillingInput, plans.book);
        trs.push(tr);
        out.set(s.id, { kind: 'settled', transition: tr });
      } catch (err) {
        if (!(err instanceof BillingError)) throw err;
        out.set(s.id, { kind: 'pending' }); // left to the reconciler, which records what the gateway did and reports it
      }
    }
    await writeTransitions(q, trs);
    await bump(q, trs);
  });
  return out;
}
