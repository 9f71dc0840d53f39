// The billing jobs (README "Billing jobs and the staff side"): renewals at period end (which also apply cancels and downgrades scheduled for it),
// dunning retries on days 1/3/7/14 after a failed renewal, and expiry of `incomplete` subscriptions. Each step is one
// state-machine input applied through the store (chargeLive / applyLive): the subscription row is locked, the step is
// derived from the locked state, and its payment row carries the machine's deterministic idempotency key
// (sub:<id>:period:<start>:attempt:<n>). So a step already applied — by another instance running the same tick, or
// before a `kill -9` — is found done (duplicate / in_flight) and never applied or charged twice. Renewals and retries
// of customers with a payment method are charged a batch at a time (server/billing/batch.ts: the same protocol in
// set-based statements); expiries and customers without a payment method go one by one.
//
// Every step is stamped at its due instant (the period end, the retry's day, creation + 23 h), never at the clock of
// the run, so a server stopped for three days catches up with the same rows it would have written on time, in due
// order (batches ordered by due instant). A step dated before the current month is written into a closed month: the
// same transaction bumps history_epoch, so the incremental marts rebuild (README "Report engine").
//
// A gateway outage (an `error` answer, a timeout, an unreachable gateway) stops the batch: the payment row being
// charged stays `pending` (billing.reconcile-pending settles it once the gateway answers), the subscription is left
// as it is, and the job backs off (billing_job_backoff: 1, 2, 4 … 30 minutes) instead of failing subscriptions.
import { createHash } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import type { Job } from '../jobs/index.ts';
import { DAY_MS, RETRY_DAYS, type Subscription } from './machine.ts';
import { applyLive, cardOnFile, chargeLive, loadSubscription, type ChargeResult, type ChargeStep } from './store.ts';
import type { ChargeRequest, GatewayResult, PaymentGateway } from './gateway.ts';
import { chargeBatch } from './batch.ts';
import { DEFAULT_BUSINESS } from '../../etl/simulator/params.ts';

export const HOUR_MS = 3_600_000;
/** An `incomplete` subscription (its first payment never succeeded) expires this long after creation, like the simulator's and Stripe's. */
export const INCOMPLETE_EXPIRES_MS = 23 * HOUR_MS;

export type StepKind = 'renewal' | 'retry' | 'expiry';

/** One due step as the due query found it (the locked state is checked again before it is applied). */
export interface DueStep { kind: StepKind; subscriptionId: number; userId: number; simulated: boolean; dueAt: Date; attempts: number }

export interface StepReport { kind: StepKind; subscriptionId: number; dueAt: Date; outcome: string }

export interface BillingRunResult {
  processed: number;
  /** outcomes by name: renewed, past_due, recovered, retry_failed, canceled, expired, downgraded, duplicate, in_flight … */
  outcomes: Record<string, number>;
  /** The gateway did not answer (or answered an error): the batch stopped here. */
  outage?: string;
  /** Still backing off after an outage: nothing was tried. */
  backedOffUntil?: Date;
  /** The time budget ran out with work left: the next tick continues. */
  more?: boolean;
}

export interface BillingJobOptions {
  gateway: PaymentGateway;
  /** Due steps read per query (default 200). */
  batchSize?: number;
  /** Gateway calls (and single steps) of one batch at once (default 8); batches follow each other in due order. */
  concurrency?: number;
  /** Batches charged at once (default 2): one's database work overlaps the other's machine work and gateway call. Due
   *  steps are read `batchSize × lanes` at a time and split in due order; each batch locks its own subscriptions. */
  lanes?: number;
  /** Stop starting new batches after this long (default 50 s: a run fits between two ticks). */
  budgetMs?: number;
  onStep?: (s: StepReport) => void;
}

// ── the simulated payment method ────────────────────────────────────────────────────────────────────────────────
//
// Simulated customers (users.simulated) cannot sign in, so they never add a card. Their charges go to a simulated
// payment method (token `sim_<user id>`) that answers the way the simulator's model does: the first renewal attempt
// fails with the run's renewalFailureRate, each retry succeeds with 1 − (1 − retryRecoveryRate)^(1/4) (so the four
// retries recover retryRecoveryRate of failures), failure reasons in the simulator's mix. The answer is a pure
// function of the run's seed and the charge's idempotency key: the same key always gets the same answer (so a
// re-sent charge after a crash is answered the same), and the rates hold over many keys. No gateway is involved.

export interface SimulationModel { seed: number; renewalFailureRate: number; retrySuccess: number; initialFailureRate: number }

export async function loadSimulationModel(q: Queryable): Promise<SimulationModel> {
  const run = await q.one<{ seed: string | number; params: any }>(sql`SELECT seed, params FROM simulation_runs ORDER BY id DESC LIMIT 1`);
  const b = { ...DEFAULT_BUSINESS, ...(run?.params?.business ?? {}) };
  return {
    seed: Number(run?.seed ?? 42), renewalFailureRate: b.renewalFailureRate, initialFailureRate: b.initialFailureRate,
    retrySuccess: 1 - Math.pow(1 - b.retryRecoveryRate, 1 / 4),
  };
}

export const simulatedToken = (userId: number) => `sim_${userId}`;
const SIM_REASONS: [string, number][] = [['card_declined', 45], ['insufficient_funds', 30], ['expired_card', 15], ['processing_error', 10]];

/** The simulated payment method's answer to a charge key (deterministic). */
export function simulatedAnswer(model: SimulationModel, idempotencyKey: string): GatewayResult {
  const h = createHash('sha256').update(`${model.seed}:${idempotencyKey}`).digest();
  const u = h.readUInt32BE(0) / 2 ** 32, v = h.readUInt32BE(4) / 2 ** 32;
  const attempt = Number(/:attempt:(\d+)$/.exec(idempotencyKey)?.[1] ?? 1);
  // attempt 1 is the renewal (simulated customers start no new subscription live); later attempts are retries
  const ok = attempt > 1 ? u < model.retrySuccess : u >= model.renewalFailureRate;
  if (ok) return { status: 'succeeded' };
  let x = v * 100, reason = SIM_REASONS[0][0];
  for (const [r, w] of SIM_REASONS) { if (x < w) { reason = r; break; } x -= w; }
  return reason === 'insufficient_funds' ? { status: 'insufficient_funds', message: 'Insufficient funds (simulated).' }
    : { status: 'declined', reason, message: `Declined: ${reason} (simulated).` };
}

/**
 * The app's gateway with simulated customers' payment method in front: charges with a `sim_` token are answered by
 * the model, refunds of a simulated customer's payment succeed (within the charge), the rest goes to `gateway`.
 */
export function withSimulatedPayments(db: Queryable, gateway: PaymentGateway, model: SimulationModel | (() => Promise<SimulationModel>)): PaymentGateway {
  let loaded: SimulationModel | undefined = typeof model === 'function' ? undefined : model;
  const getModel = async () => (loaded ??= await (model as () => Promise<SimulationModel>)());
  return {
    name: gateway.name,
    attachCard: (card) => gateway.attachCard(card),
    async charge(req) {
      if (req.token.startsWith('sim_')) return simulatedAnswer(await getModel(), req.idempotencyKey);
      return gateway.charge(req);
    },
    ...(gateway.chargeMany && {
      async chargeMany(reqs: ChargeRequest[]) {
        const model = reqs.some((r) => r.token.startsWith('sim_')) ? await getModel() : undefined;
        const real = reqs.filter((r) => !r.token.startsWith('sim_'));
        const answers = real.length ? await gateway.chargeMany!(real) : [];
        let k = 0;
        return reqs.map((r) => (r.token.startsWith('sim_') ? simulatedAnswer(model!, r.idempotencyKey) : answers[k++]!));
      },
    }),
    async refund(req) {
      const p = await db.one<{ simulated: boolean; amount_cents: number }>(sql`SELECT u.simulated, p.amount_cents FROM payment_keys k
        JOIN payments p ON p.id = k.payment_id AND p.created_at = k.created_at JOIN users u ON u.id = p.user_id WHERE k.idempotency_key = ${req.chargeKey}`);
      if (p?.simulated) {
        return req.amountCents <= p.amount_cents ? { status: 'succeeded' } : { status: 'error', message: 'A refund cannot exceed its charge.' };
      }
      return gateway.refund(req);
    },
    lookup: (key) => gateway.lookup(key),
  };
}

/**
 * For off-session charges made by jobs: an `error` answer to a charge is treated like no answer (the charge stays
 * pending, to be asked again), because an error is the gateway's trouble, not the customer's. Answers the gateway
 * recorded (lookup) are final. `onTrouble` hears of every error, timeout and thrown call.
 */
export function outageAware(gateway: PaymentGateway, onTrouble: (what: string) => void = () => {}): PaymentGateway {
  return {
    name: gateway.name,
    attachCard: (card) => gateway.attachCard(card),
    async charge(req) {
      let r: GatewayResult;
      try { r = await gateway.charge(req); } catch (err: any) { onTrouble(`unreachable: ${err?.message ?? err}`); throw err; }
      if (r.status === 'timeout') onTrouble('timeout');
      if (r.status === 'error') { onTrouble(`error: ${r.message}`); throw new Error(`gateway error: ${r.message}`); }
      return r;
    },
    ...(gateway.chargeMany && {
      // the same, per answer; an `error` answer becomes `timeout` (no answer: left pending) instead of a throw
      async chargeMany(reqs: ChargeRequest[]) {
        let rs: GatewayResult[];
        try { rs = await gateway.chargeMany!(reqs); } catch (err: any) { onTrouble(`unreachable: ${err?.message ?? err}`); throw err; }
        return rs.map((r): GatewayResult => {
          if (r.status === 'timeout') onTrouble('timeout');
          if (r.status !== 'error') return r;
          onTrouble(`error: ${r.message}`);
          return { status: 'timeout' };
        });
      },
    }),
    refund: (req) => gateway.refund(req),
    lookup: (key) => gateway.lookup(key),
  };
}

// ── due work ────────────────────────────────────────────────────────────────────────────────────────────────────

const retryDaysSql = sql`${[...RETRY_DAYS]}::int[]`;

/** Due steps of one kind, oldest due first, skipping subscriptions this run already left alone. */
export async function dueSteps(q: Queryable, kind: StepKind, now: Date, limit: number, skip: number[] = []): Promise<DueStep[]> {
  const rows = await q.query<any>(kind === 'renewal'
    ? sql`SELECT s.id, s.user_id, u.simulated, s.current_period_end AS due_at, 0 AS attempts
        FROM subscriptions s JOIN users u ON u.id = s.user_id
        WHERE s.status = 'active' AND s.current_period_end <= ${now} AND s.id <> ALL(${skip}::bigint[])
        ORDER BY s.current_period_end, s.id LIMIT ${limit}`
    : kind === 'retry'
      // the next retry of a past_due subscription: day RETRY_DAYS[n-1] after the period start, n the attempts made for
      // it (never before the last attempt: a customer may have retried with a new card meanwhile)
      ? sql`SELECT * FROM (
          SELECT s.id, s.user_id, u.simulated, a.n AS attempts,
            greatest(s.current_period_start + make_interval(days => (${retryDaysSql})[a.n]), a.last_at) AS due_at
          FROM subscriptions s JOIN users u ON u.id = s.user_id
          CROSS JOIN LATERAL (SELECT coalesce(max(p.attempt), 1) AS n, max(p.created_at) AS last_at FROM payments p
            WHERE p.subscription_id = s.id AND p.kind = 'renewal' AND p.period_start = s.current_period_start AND p.status <> 'pending'
              -- a period's attempts are charged at or after its start: the payments months before it are skipped
              -- (partition pruning per subscription) instead of probed (README "Partitions")
              AND p.created_at >= s.current_period_start) a
          WHERE s.status = 'past_due' AND s.id <> ALL(${skip}::bigint[]) AND a.n < ${RETRY_DAYS.length + 1}) d
        WHERE due_at <= ${now} ORDER BY due_at, id LIMIT ${limit}`
      : sql`SELECT s.id, s.user_id, u.simulated, 0 AS attempts,
            greatest(s.created_at + ${`${INCOMPLETE_EXPIRES_MS} milliseconds`}::interval,
              (SELECT max(p.created_at) FROM payments p WHERE p.subscription_id = s.id AND p.created_at >= s.created_at)) AS due_at
          FROM subscriptions s JOIN users u ON u.id = s.user_id
          WHERE s.status = 'incomplete' AND s.created_at <= ${new Date(now.getTime() - INCOMPLETE_EXPIRES_MS)} AND s.id <> ALL(${skip}::bigint[])
            -- a subscription is charged only after its creation (server/billing/machine.ts): earlier months are skipped
            AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.subscription_id = s.id AND p.status = 'pending' AND p.created_at >= s.created_at)
          ORDER BY s.created_at, s.id LIMIT ${limit}`);
  return rows.filter((r) => r.due_at <= now).map((r) => ({ kind, subscriptionId: Number(r.id), userId: Number(r.user_id), simulated: r.simulated,
    dueAt: r.due_at, attempts: Number(r.attempts) }));
}

/** The first instant of the UTC month holding `now`: a step dated before it writes into a closed month. */
export const monthStart = (now: Date) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));

async function bumpIfClosedMonthWritten(q: Queryable, subscriptionId: number, before: Date): Promise<void> {
  // rows this very transaction wrote (xmin = our transaction id) for this subscription, dated in a closed month
  const wrote = await q.one<{ ok: boolean }>(sql`SELECT (
      EXISTS (SELECT 1 FROM subscription_events WHERE subscription_id = ${subscriptionId} AND at < ${before}
        AND xmin = pg_current_xact_id_if_assigned()::xid)
      OR EXISTS (SELECT 1 FROM payments WHERE subscription_id = ${subscriptionId} AND created_at < ${before} AND status <> 'pending'
        AND xmin = pg_current_xact_id_if_assigned()::xid)) AS ok`);
  if (wrote?.ok) {
    await q.query(sql`UPDATE history_epoch SET epoch = epoch + 1, changed_at = now(),
      reason = ${`billing job: subscription ${subscriptionId} step dated before ${before.toISOString().slice(0, 7)}`}`);
  }
}

/** `db` whose transactions also bump history_epoch when they wrote rows of `subscriptionId` dated before `before`. */
export function closedMonthAware(db: Db, subscriptionId: number, before: Date): Db {
  return Object.assign(Object.create(db) as Db, {
    tx: <T>(fn: (q: Queryable) => Promise<T>, opts?: Parameters<Db['tx']>[1]) => db.tx(async (q) => {
      const r = await fn(q);
      await bumpIfClosedMonthWritten(q, subscriptionId, before);
      return r;
    }, opts),
  });
}

const nextRetryAt = (s: Subscription) => s.periodStart + RETRY_DAYS[s.dueAttempts - 1] * DAY_MS;

function describe(kind: StepKind, r: ChargeResult): string {
  if (r.kind === 'settled' || r.kind === 'applied') {
    const types = r.transition.events.map((e) => e.type);
    if (types.includes('canceled')) return r.transition.sub.endReason === 'voluntary' ? 'canceled' : 'canceled_involuntary';
    if (types.includes('recovered')) return 'recovered';
    if (types.includes('past_due')) return types.includes('plan_changed') ? 'downgraded_past_due' : 'past_due';
    if (types.includes('renewed')) return types.includes('plan_changed') ? 'downgraded' : 'renewed';
    if (types.includes('payment_failed')) return 'retry_failed';
    if (r.kind === 'settled' && r.transition.duplicate) return 'unapplied';
    return kind === 'expiry' ? 'expired' : types.join('+') || 'nothing';
  }
  return r.kind;
}

/** The step of a due renewal or retry, from the locked state: exactly the one the due query saw, else null (someone else moved it on). */
export function stepBuilder(d: DueStep): (s: Subscription) => ChargeStep | null {
  const at = d.dueAt.getTime();
  return (s) => d.kind === 'renewal'
    ? (s.status === 'active' && s.periodEnd === at ? { type: 'period_end', at } : null)
    : (s.status === 'past_due' && s.dueAttempts === d.attempts && nextRetryAt(s) <= at ? { type: 'retry', at, attempt: s.dueAttempts + 1 } : null);
}

/** Applies one due step on its own (expiries, customers without a payment method); returns what happened. */
export async function processStep(db: Db, gateway: PaymentGateway, d: DueStep, now: Date): Promise<ChargeResult> {
  const tdb = d.dueAt < monthStart(now) ? closedMonthAware(db, d.subscriptionId, monthStart(now)) : db;
  const at = d.dueAt.getTime();
  if (d.kind === 'expiry') {
    return tdb.tx(async (q) => {
      const s = await loadSubscription(q, d.subscriptionId, { forUpdate: true });
      if (!s || s.status !== 'incomplete') return { kind: 'duplicate' as const };
      if (await q.one(sql`SELECT 1 FROM payments WHERE subscription_id = ${d.subscriptionId} AND status = 'pending'`)) return { kind: 'nothing' as const };
      const transition = await applyLive(q, d.subscriptionId, { type: 'expire', at });
      return { kind: 'applied' as const, transition };
    });
  }
  const build = stepBuilder(d);
  const card = await cardOnFile(db, d.userId);
  const token = card?.token ?? (d.simulated ? simulatedToken(d.userId) : null);
  if (token) return chargeLive(tdb, gateway, d.subscriptionId, (s) => build(s), { token, offSession: true });
  // No card on file: the outcome is known without asking anyone (the customer adds a card on /account, which retries).
  return tdb.tx(async (q) => {
    const s = await loadSubscription(q, d.subscriptionId, { forUpdate: true });
    if (!s) return { kind: 'nothing' as const };
    if (await q.one(sql`SELECT 1 FROM payments WHERE subscription_id = ${d.subscriptionId} AND status = 'pending'`)) return { kind: 'nothing' as const };
    const step = build(s);
    if (!step) return { kind: 'duplicate' as const };
    const transition = await applyLive(q, d.subscriptionId, { ...step, outcome: { ok: false, reason: 'no_payment_method' } } as any);
    return transition.duplicate ? { kind: 'duplicate' as const } : { kind: 'applied' as const, transition };
  });
}

async function backoffUntil(db: Db, job: string, now: Date): Promise<Date | undefined> {
  const r = await db.one<{ until: Date }>(sql`SELECT until FROM billing_job_backoff WHERE job = ${job}`);
  return r && r.until > now ? r.until : undefined;
}

async function noteOutage(db: Db, job: string, now: Date, what: string): Promise<void> {
  await db.query(sql`INSERT INTO billing_job_backoff AS b (job, until, failures, last_error, updated_at)
    VALUES (${job}, ${new Date(now.getTime() + 60_000)}, 1, ${what.slice(0, 500)}, ${now})
    ON CONFLICT (job) DO UPDATE SET failures = b.failures + 1, last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at,
      until = ${now}::timestamptz + least(interval '30 minutes', interval '1 minute' * power(2, b.failures))`);
}

/**
 * Runs every due step of one kind, batch after batch in due order, until none is due, the budget is spent, or the
 * gateway is in trouble (then it backs off). Safe to run concurrently with itself (another instance): each step is
 * decided under the subscription's row lock from the rows.
 */
export async function runBillingSteps(db: Db, kind: StepKind, now: Date, opts: BillingJobOptions & { job?: string }): Promise<BillingRunResult> {
  const job = opts.job ?? `billing.${kind === 'renewal' ? 'renewals' : kind === 'retry' ? 'dunning' : 'expire-incomplete'}`;
  const result: BillingRunResult = { processed: 0, outcomes: {} };
  const count = (o: string) => { result.outcomes[o] = (result.outcomes[o] ?? 0) + 1; };
  if (kind !== 'expiry') {
    const until = await backoffUntil(db, job, now);
    if (until) return { ...result, backedOffUntil: until };
  }
  let trouble: string | undefined;
  const model = () => loadSimulationModel(db);
  const gateway = outageAware(withSimulatedPayments(db, opts.gateway, model), (w) => { trouble ??= w; });
  const started = performance.now();
  const skip: number[] = [];
  const batchSize = opts.batchSize ?? 200, concurrency = Math.max(1, opts.concurrency ?? 8), lanes = Math.max(1, opts.lanes ?? 2);
  for (;;) {
    if (performance.now() - started > (opts.budgetMs ?? 50_000)) { result.more = true; break; }
    const batch = await dueSteps(db, kind, now, batchSize * lanes, skip);
    if (!batch.length) break;
    const report = (d: DueStep, kind2: string, outcome: string) => {
      if (kind2 !== 'settled' && kind2 !== 'applied') skip.push(d.subscriptionId);
      else result.processed++;
      count(outcome);
      opts.onStep?.({ kind, subscriptionId: d.subscriptionId, dueAt: d.dueAt, outcome });
    };
    // charges with a payment method go as one batch (server/billing/batch.ts); the rest one by one
    let single = batch;
    if (kind !== 'expiry') {
      const tokens = new Map((await db.query<{ user_id: number; gateway_token: string }>(sql`SELECT user_id, gateway_token FROM payment_methods
        WHERE user_id = ANY(${batch.map((d) => d.userId)}::bigint[])`)).map((r) => [Number(r.user_id), r.gateway_token]));
      const tokenOf = (d: DueStep) => tokens.get(d.userId) ?? (d.simulated ? simulatedToken(d.userId) : undefined);
      const charged = batch.filter((d) => tokenOf(d));
      single = batch.filter((d) => !tokenOf(d));
      if (charged.length) {
        const chunks = Array.from({ length: Math.ceil(charged.length / batchSize) }, (_, i) => charged.slice(i * batchSize, (i + 1) * batchSize));
        const results = await Promise.all(chunks.map((chunk) => chargeBatch(db, gateway,
          chunk.map((d) => ({ subscriptionId: d.subscriptionId, token: tokenOf(d)!, build: stepBuilder(d) })),
          { concurrency, closedBefore: monthStart(now), onTrouble: () => trouble !== undefined })));
        const outcomes = new Map(results.flatMap((r) => [...r]));
        for (const d of charged) {
          const o = outcomes.get(d.subscriptionId) ?? { kind: 'nothing' as const };
          report(d, o.kind, o.kind === 'settled' || o.kind === 'applied' ? describe(kind, o as ChargeResult) : o.kind);
        }
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < single.length && !trouble) {
        const d = single[next++];
        const r = await processStep(db, gateway, d, now);
        report(d, r.kind, r.kind === 'pending' ? 'pending' : describe(kind, r));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, single.length) }, worker));
    if (trouble) break;
  }
  if (trouble) {
    result.outage = trouble;
    await noteOutage(db, job, now, trouble);
  } else if (kind !== 'expiry') {
    await db.query(sql`DELETE FROM billing_job_backoff WHERE job = ${job}`);
  }
  return result;
}

/** The billing jobs of the registry (server/jobs/registry.ts). */
export function billingJobs(gateway: PaymentGateway, log: (line: string) => void = () => {}): Job[] {
  const logged = (name: string, r: BillingRunResult) => {
    if (r.outage) log(`[jobs] ${name}: payment gateway trouble (${r.outage}); backing off, subscriptions unchanged`);
    return r;
  };
  return [
    // period ends: renew (attempt 1 of the new period), or apply the cancel / the downgrade scheduled for it
    { name: 'billing.renewals', schedule: '* * * * *', run: async (db, now) => logged('billing.renewals', await runBillingSteps(db, 'renewal', now, { gateway })) },
    // retries of past_due renewals on days 1, 3, 7, 14; the fifth failed attempt cancels (involuntary churn)
    { name: 'billing.dunning', schedule: '30 * * * * *', run: async (db, now) => logged('billing.dunning', await runBillingSteps(db, 'retry', now, { gateway })) },
    // incomplete subscriptions whose first payment never succeeded, 23 hours after creation
    { name: 'billing.expire-incomplete', schedule: '*/5 * * * *', run: (db, now) => runBillingSteps(db, 'expiry', now, { gateway }) },
  ];
}
