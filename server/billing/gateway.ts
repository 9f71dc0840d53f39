// The payment gateway behind live billing: an interface a real provider (Stripe, Adyen …) is adapted to, and the
// built-in test gateway with the familiar test card numbers. Every charge and refund carries an idempotency key: the
// gateway answers a repeated key with the first answer and moves money once.
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Db } from '../db/index.ts';

export interface CardInput { number: string; expMonth: number; expYear: number; cvc: string }
export type Brand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'card';

/** What the gateway answered. `timeout`: no answer in time, so the outcome is unknown (the money may have moved). */
export type GatewayResult =
  | { status: 'succeeded' }
  | { status: 'declined'; reason: string; message: string }
  | { status: 'insufficient_funds'; message: string }
  | { status: 'error'; message: string }
  | { status: 'timeout' };

export interface ChargeRequest {
  idempotencyKey: string;
  /** The card, as the token attachCard returned. */
  token: string;
  amountCents: number;
  currency: string;
  /** true for charges made without the customer present (renewals, dunning retries). */
  offSession: boolean;
}

export interface PaymentGateway {
  readonly name: string;
  /** Registers a card (already checked by validateCard) and returns the token later charges use. */
  attachCard(card: CardInput): Promise<{ ok: true; token: string; brand: Brand; last4: string } | { ok: false; message: string }>;
  charge(req: ChargeRequest): Promise<GatewayResult>;
  /**
   * Optional: many charges in one call, each under its own idempotency key and answered as charge() would answer it,
   * in request order. After the first one in trouble (no answer, an outage) the rest are not sent: they answer
   * `timeout` (unknown, so they are asked again later under the same key). The billing jobs use it when present.
   */
  chargeMany?(reqs: ChargeRequest[]): Promise<GatewayResult[]>;
  refund(req: { idempotencyKey: string; chargeKey: string; amountCents: number; currency: string }): Promise<GatewayResult>;
  /** The answer already given for this key, or null when the gateway never received it (then it is safe to send again). */
  lookup(idempotencyKey: string): Promise<GatewayResult | null>;
}

/** The reason stored in payments.failure_reason for a result that is not a success (null for a success). */
export function failureReason(r: GatewayResult): string | null {
  switch (r.status) {
    case 'succeeded': return null;
    case 'declined': return r.reason;
    case 'insufficient_funds': return 'insufficient_funds';
    case 'error': return 'processing_error';
    case 'timeout': return null;
  }
}

/** What to tell the customer about a result that is not a success. */
export function resultMessage(r: GatewayResult): string {
  switch (r.status) {
    case 'succeeded': return 'The payment succeeded.';
    case 'declined': case 'insufficient_funds': case 'error': return r.message;
    case 'timeout': return 'The payment provider has not answered yet; the payment is being processed.';
  }
}

// ── card checks (before anything reaches a gateway) ─────────────────────────────────────────────────────────────

export function luhnOk(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}

export function brandOf(digits: string): Brand {
  if (/^4/.test(digits)) return 'visa';
  if (/^(5[1-5]|2(2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720))/.test(digits)) return 'mastercard';
  if (/^3[47]/.test(digits)) return 'amex';
  if (/^(6011|65|64[4-9])/.test(digits)) return 'discover';
  return 'card';
}

/**
 * The card fields of a form, checked: number (spaces and dashes allowed, 12–19 digits, Luhn), expiry MM/YY not before
 * the current month of `now`, CVC of 3–4 digits. Errors are keyed by form field name and name the field.
 */
export function validateCard(form: { card_number?: string; exp?: string; cvc?: string }, now: Date):
  { ok: true; card: CardInput } | { ok: false; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const number = (form.card_number ?? '').replace(/[\s-]/g, '');
  if (!number) errors.card_number = 'Card number: enter the number on the card';
  else if (!/^\d+$/.test(number)) errors.card_number = 'Card number: use digits only (spaces are fine)';
  else if (number.length < 12 || number.length > 19) errors.card_number = 'Card number: a card number has 12 to 19 digits';
  else if (!luhnOk(number)) errors.card_number = 'Card number: this number is not valid; check it for a typo';
  const exp = (form.exp ?? '').trim();
  const m = /^(\d{1,2})\s*\/\s*(\d{2}|\d{4})$/.exec(exp);
  let expMonth = 0, expYear = 0;
  if (!exp) errors.exp = 'Expiry: enter the expiry date as MM/YY';
  else if (!m) errors.exp = 'Expiry: use the form MM/YY, e.g. 04/29';
  else {
    expMonth = Number(m[1]);
    expYear = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
    if (expMonth < 1 || expMonth > 12) errors.exp = 'Expiry: the month must be 01 to 12';
    else if (expYear * 12 + expMonth < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1) errors.exp = 'Expiry: this card has expired';
    else if (expYear > now.getUTCFullYear() + 30) errors.exp = 'Expiry: the year is too far in the future';
  }
  const cvc = (form.cvc ?? '').trim();
  if (!cvc) errors.cvc = 'CVC: enter the 3 or 4 digits on the card';
  else if (!/^\d{3,4}$/.test(cvc)) errors.cvc = 'CVC: 3 or 4 digits';
  if (Object.keys(errors).length) return { ok: false, errors };
  return { ok: true, card: { number, expMonth, expYear, cvc } };
}

// ── the built-in test gateway ───────────────────────────────────────────────────────────────────────────────────

type Behavior = 'succeed' | 'decline' | 'insufficient_funds' | 'fail_off_session';

/** Test card numbers (Stripe's): any other valid number succeeds. */
export const TEST_CARDS: Record<string, Behavior> = {
  '4242424242424242': 'succeed',
  '4000000000000002': 'decline',
  '4000000000009995': 'insufficient_funds',
  '4000000000000341': 'fail_off_session',
};

/**
 * A fault the next gateway calls suffer (tests): `lost_answer` — the charge is made but the answer never arrives;
 * `unreachable` — the request never arrives. Both look like a timeout to the caller. `outage` — the provider answers
 * `error` (unavailable) without recording anything, as a provider in trouble does.
 */
export type Fault = 'lost_answer' | 'unreachable' | 'outage';

export interface TestGateway extends PaymentGateway {
  /** The next `count` charge/refund calls suffer `fault`. */
  injectFaults(fault: Fault, count?: number): void;
}

interface ChargeRow { status: 'succeeded' | 'declined' | 'insufficient_funds' | 'error'; reason: string | null; message: string | null }

function resultOf(row: ChargeRow): GatewayResult {
  switch (row.status) {
    case 'succeeded': return { status: 'succeeded' };
    case 'declined': return { status: 'declined', reason: row.reason ?? 'card_declined', message: row.message ?? 'Your card was declined.' };
    case 'insufficient_funds': return { status: 'insufficient_funds', message: row.message ?? 'Your card has insufficient funds.' };
    case 'error': return { status: 'error', message: row.message ?? 'The payment could not be processed.' };
  }
}

/**
 * The test gateway: cards behave by their number (TEST_CARDS), every charge and refund is recorded by idempotency key
 * in test_gateway_charges (a repeated key returns the recorded answer and moves nothing), so it survives restarts and
 * tests can count what was charged.
 */
/** What the test gateway answers a charge on a card with this behavior (undefined: a token it never issued). */
function decide(behavior: Behavior | undefined, offSession: boolean): ChargeRow {
  if (!behavior) return { status: 'error', reason: null, message: 'The payment provider does not know this card.' };
  if (behavior === 'decline' || (behavior === 'fail_off_session' && offSession)) {
    return { status: 'declined', reason: 'card_declined', message: 'Your card was declined.' };
  }
  if (behavior === 'insufficient_funds') return { status: 'insufficient_funds', reason: null, message: 'Your card has insufficient funds.' };
  return { status: 'succeeded', reason: null, message: null };
}

export function createTestGateway(db: Db): TestGateway {
  const faults: Fault[] = [];
  // A card's behavior never changes once attached: the cards this process attached are known without a query (the
  // table stays the truth for the others: another process's, or before a restart).
  const known = new Map<string, Behavior>();
  const remember = (token: string, behavior: Behavior) => {
    known.set(token, behavior);
    if (known.size > 10_000) known.delete(known.keys().next().value!);
  };
  const behaviorOf = async (token: string) => known.get(token)
    ?? (await db.one<{ behavior: Behavior }>(sql`SELECT behavior FROM test_gateway_cards WHERE token = ${token}`))?.behavior;
  const record = async (key: string, row: { operation: 'charge' | 'refund'; token: string | null; amountCents: number;
    currency: string; offSession: boolean } & ChargeRow): Promise<GatewayResult> => {
    // the first request with a key wins; a concurrent one waits for its insert and then reads it
    const inserted = await db.one<ChargeRow>(sql`INSERT INTO test_gateway_charges
        (idempotency_key, operation, token, amount_cents, currency, off_session, status, reason, message)
      VALUES (${key}, ${row.operation}, ${row.token}, ${row.amountCents}, ${row.currency}, ${row.offSession}, ${row.status},
        ${row.reason}, ${row.message})
      ON CONFLICT (idempotency_key) DO NOTHING RETURNING status, reason, message`);
    if (inserted) return resultOf(inserted);
    const first = await db.one<ChargeRow>(sql`SELECT status, reason, message FROM test_gateway_charges WHERE idempotency_key = ${key}`);
    return resultOf(first!);
  };
  const withFault = async (send: () => Promise<GatewayResult>): Promise<GatewayResult> => {
    const fault = faults.shift();
    if (fault === 'unreachable') return { status: 'timeout' };
    if (fault === 'outage') return { status: 'error', message: 'The payment provider is unavailable.' };
    const result = await send();
    return fault === 'lost_answer' ? { status: 'timeout' } : result;
  };
  const gateway: TestGateway = {
    name: 'test',
    injectFaults(fault, count = 1) { for (let i = 0; i < count; i++) faults.push(fault); },
    async attachCard(card) {
      const token = `tok_test_${randomBytes(12).toString('hex')}`;
      const brand = brandOf(card.number), last4 = card.number.slice(-4);
      const behavior = TEST_CARDS[card.number] ?? 'succeed';
      await db.query(sql`INSERT INTO test_gateway_cards (token, behavior, brand, last4) VALUES (${token}, ${behavior}, ${brand}, ${last4})`);
      remember(token, behavior);
      return { ok: true, token, brand, last4 };
    },
    charge(req) {
      return withFault(async () => {
        return record(req.idempotencyKey, { operation: 'charge', token: req.token, amountCents: req.amountCents,
          currency: req.currency, offSession: req.offSession, ...decide(await behaviorOf(req.token), req.offSession) });
      });
    },
    // One SELECT of the cards and one INSERT of the ledger rows for the lot (one commit, not one per charge). A fault
    // strikes the first charge, as it would the next charge() call, and stops the sending.
    async chargeMany(reqs) {
      if (!reqs.length) return [];
      if (faults.length) {
        const [first, ...rest] = reqs;
        return [await gateway.charge(first!), ...rest.map((): GatewayResult => ({ status: 'timeout' }))];
      }
      const cards = new Map((await db.query<{ token: string; behavior: Behavior }>(sql`SELECT token, behavior FROM test_gateway_cards
        WHERE token = ANY(${[...new Set(reqs.map((r) => r.token))]}::text[])`)).map((r) => [r.token, r.behavior]));
      const rows = reqs.map((r) => ({ ...r, ...decide(cards.get(r.token), r.offSession) }));
      // the first request with a key wins (here or elsewhere); the others read what it recorded
      const answered = new Map((await db.query<ChargeRow & { idempotency_key: string }>(sql`INSERT INTO test_gateway_charges
          (idempotency_key, operation, token, amount_cents, currency, off_session, status, reason, message)
        SELECT * FROM unnest(${rows.map((r) => r.idempotencyKey)}::text[], ${rows.map(() => 'charge')}::text[], ${rows.map((r) => r.token)}::text[],
          ${rows.map((r) => r.amountCents)}::int[], ${rows.map((r) => r.currency)}::text[], ${rows.map((r) => r.offSession)}::boolean[],
          ${rows.map((r) => r.status)}::text[], ${rows.map((r) => r.reason)}::text[], ${rows.map((r) => r.message)}::text[])
        ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key, status, reason, message`)).map((r) => [r.idempotency_key, r]));
      const missing = reqs.map((r) => r.idempotencyKey).filter((k) => !answered.has(k));
      if (missing.length) {
        for (const r of await db.query<ChargeRow & { idempotency_key: string }>(sql`SELECT idempotency_key, status, reason, message
          FROM test_gateway_charges WHERE idempotency_key = ANY(${missing}::text[])`)) answered.set(r.idempotency_key, r);
      }
      return reqs.map((r) => resultOf(answered.get(r.idempotencyKey)!));
    },
    refund(req) {
      return withFault(async () => {
        const charge = await db.one<{ status: string; amount_cents: number }>(sql`SELECT status, amount_cents FROM test_gateway_charges
          WHERE idempotency_key = ${req.chargeKey} AND operation = 'charge'`);
        const outcome: ChargeRow = !charge || charge.status !== 'succeeded'
          ? { status: 'error', reason: null, message: 'There is no succeeded charge with that key to refund.' }
          : req.amountCents > charge.amount_cents
            ? { status: 'error', reason: null, message: 'A refund cannot exceed its charge.' }
            : { status: 'succeeded', reason: null, message: null };
        return record(req.idempotencyKey, { operation: 'refund', token: null, amountCents: req.amountCents, currency: req.currency,
          offSession: true, ...outcome });
      });
    },
    async lookup(key) {
      const row = await db.one<ChargeRow>(sql`SELECT status, reason, message FROM test_gateway_charges WHERE idempotency_key = ${key}`);
      return row ? resultOf(row) : null;
    },
  };
  return gateway;
}
