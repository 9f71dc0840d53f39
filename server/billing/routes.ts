// The subscriber's side of live billing: /plans (tiers compared, subscribe with a card), POST /subscribe, and the
// billing part of /account (plan, status, next charge, card, history, receipts, upgrade with a confirm step, downgrade,
// cancel, resume, card update). Every change goes through the store (server/billing/store.ts) and so through the
// state machine; every form carries an idempotency key, so a repeated submit returns the first outcome.
import { Hono, type Context } from 'hono';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html, type Html } from '../html.ts';
import { field, formBody, formError, type FieldErrors } from '../auth/forms.ts';
import { notFound } from '../errors.ts';
import { BillingError, prorationCents } from './machine.ts';
import { validateCard, resultMessage, type CardInput } from './gateway.ts';
import {
  applyLive, cachedPlans, cardOnFile, chargeLive, checkFormKey, checkoutLive, firstOutcome, currentSubscriptionId, reconcilePending,
  nextSubscriptionId, runOnce, saveCard, periodKeyPrefix, type ChargeResult, type FormOutcome, type PlanRow, type Plans,
} from './store.ts';

export const billing = new Hono<Env>();

export const BILLING_NOTICES: Record<string, string> = {
  subscribed: 'Welcome aboard: your subscription is active.',
  pending: 'Your payment is being processed. This page shows the outcome as soon as the payment provider confirms it.',
  upgrade: 'Your plan is upgraded.',
  downgrade: 'Your downgrade is scheduled for the end of the current period.',
  cancel: 'Your subscription will end at the end of the current period.',
  resume: 'Your subscription continues: the cancellation is withdrawn.',
  card: 'Your card is updated.',
  card_recovered: 'Your card is updated and the overdue payment went through: your subscription is active again.',
  already: 'You already have a subscription: change its plan here.',
};

// ── formatting ───────────────────────────────────────────────────────────────────────────────────────────────────
export const money = (cents: number, currency = 'USD') =>
  currency === 'USD' ? `$${(cents / 100).toFixed(2)}` : `${(cents / 100).toFixed(2)} ${currency}`;
const day = (d: Date | number) => new Date(d).toISOString().slice(0, 10);
const newKey = () => randomBytes(18).toString('base64url');
const keyField = () => html`<input type="hidden" name="idempotency_key" value="${newKey()}">`;
const per = (p: PlanRow) => (p.interval === 'year' ? 'year' : 'month');
const KIND: Record<string, string> = { initial: 'First payment', renewal: 'Renewal', proration: 'Upgrade (prorated)' };
const STATUS: Record<string, string> = { incomplete: 'Payment needed', active: 'Active', past_due: 'Past due', canceled: 'Ended' };

function respond(c: Context<Env>, out: FormOutcome, render: (status: number, message?: string) => Response | Promise<Response>) {
  if (out.location && out.status >= 300 && out.status < 400) return c.redirect(out.location, 303);
  return render(out.status, out.message);
}

function billingError(err: unknown): FormOutcome {
  if (err instanceof BillingError) return { status: 409, message: `That change is not possible now: ${err.message}.` };
  throw err;
}

function chargeOutcome(r: ChargeResult, ok: string): FormOutcome {
  switch (r.kind) {
    case 'settled':
      return r.result.status === 'succeeded' ? { status: 303, location: `/account?done=${ok}` } : { status: 402, message: resultMessage(r.result) };
    case 'pending': return { status: 303, location: '/account?done=pending' };
    case 'in_flight': return { status: 409, message: 'A payment of your subscription is still being processed. Reload your account page in a moment.' };
    default: return { status: 303, location: `/account?done=${ok}` };
  }
}

const cardFields = (form: Record<string, string>, errors: FieldErrors) => html`
  ${field({ name: 'card_number', label: 'Card number', value: form.card_number, error: errors.card_number, required: true, autocomplete: 'cc-number', maxlength: 23 })}
  <div class="card-row">
    ${field({ name: 'exp', label: 'Expiry (MM/YY)', value: form.exp, error: errors.exp, required: true, autocomplete: 'cc-exp', maxlength: 7 })}
    ${field({ name: 'cvc', label: 'CVC', value: '', error: errors.cvc, required: true, autocomplete: 'cc-csc', maxlength: 4 })}
  </div>`;

// ── /plans ───────────────────────────────────────────────────────────────────────────────────────────────────────
async function plansPage(c: Context<Env>, o: { status?: number; message?: string; errors?: FieldErrors; form?: Record<string, string> } = {}) {
  const user = c.get('user');
  const { db } = c.get('deps');
  const plans = (await cachedPlans(db)).list.filter((p) => p.active);
  const form = o.form ?? {};
  const errors = o.errors ?? {};
  let live: { status: string; plan_id: number } | undefined;
  if (user) live = await db.one(sql`SELECT status, plan_id FROM subscriptions WHERE user_id = ${user.id} AND status <> 'canceled'`);
  const chosen = form.plan ?? c.req.query('plan') ?? plans.find((p) => live?.plan_id === p.id)?.code ?? plans[1]?.code ?? plans[0]?.code;
  const subscribed = live && live.status !== 'incomplete';
  c.header('Cache-Control', 'no-store');
  const body = html`<main class="narrow plans-page">
  <h1>Choose your plan</h1>
  <div class="table-wrap"><table class="plans-table">
    <caption class="muted">Plans compared. Prices include no taxes; cancel any time, effective at the end of the period you paid for.</caption>
    <thead><tr><th scope="col">Plan</th><th scope="col" class="num">Price</th><th scope="col">Video quality</th><th scope="col" class="num">Screens at once</th><th scope="col">Ads</th></tr></thead>
    <tbody>${plans.map((p) => html`<tr${live?.plan_id === p.id ? html` class="current"` : ''}><th scope="row">${p.name}${live?.plan_id === p.id && subscribed ? html` <span class="badge">your plan</span>` : ''}</th>
      <td class="num nowrap">${money(p.priceCents, p.currency)} / ${per(p)}</td><td>${p.quality === 'UHD' ? 'Ultra HD (4K)' : p.quality === 'HD' ? 'Full HD (1080p)' : 'SD'}</td>
      <td class="num">${p.screens}</td><td>${p.hasAds ? 'With ads' : 'No ads'}</td></tr>`)}</tbody>
  </table></div>
  ${!user ? html`<p><a class="button" href="/login?next=%2Fplans">Sign in to subscribe</a> <a class="button secondary" href="/signup">Create an account</a></p>`
    : user.role !== 'subscriber' ? html`<p class="muted">Staff accounts do not subscribe.</p>`
    : subscribed ? html`<p>You already subscribe. Change your plan, card or cancellation on <a href="/account">your account</a>.</p>`
    : html`<section class="card" aria-labelledby="subscribe-h">
    <h2 id="subscribe-h">Subscribe</h2>
    ${live?.status === 'incomplete' && !o.message ? html`<p class="form-error" role="alert">Your last payment did not go through. Try another card.</p>` : ''}
    ${formError(o.message)}
    <form method="post" action="/subscribe" novalidate>
      ${keyField()}
      <fieldset class="plan-choice${errors.plan ? ' has-error' : ''}"><legend>Plan</legend>
        ${plans.map((p) => html`<label class="check"><input type="radio" name="plan" value="${p.code}" ${p.code === chosen ? html`checked` : ''}>
          ${p.name} — ${money(p.priceCents, p.currency)} / ${per(p)}</label>`)}
        ${errors.plan ? html`<span class="field-error">${errors.plan}</span>` : ''}
      </fieldset>
      ${cardFields(form, errors)}
      <p class="muted small">You are charged today, then on the same day of every billing period until you cancel.</p>
      <p><button type="submit">Subscribe and pay</button></p>
    </form>
  </section>`}
</main>`;
  return c.html(page(c, { title: 'Plans', body }), (o.status ?? 200) as 200);
}

billing.get('/plans', (c) => plansPage(c));

/** Attach the card at the gateway (the card fields already validated). */
async function attach(c: Context<Env>, card: CardInput) {
  const { gateway } = c.get('deps');
  const r = await gateway.attachCard(card);
  if (!r.ok) return { ok: false as const, message: r.message };
  return { ok: true as const, card: { gateway: gateway.name, token: r.token, brand: r.brand, last4: r.last4, expMonth: card.expMonth, expYear: card.expYear } };
}

billing.post('/subscribe', async (c) => {
  const user = c.get('user')!;
  const deps = c.get('deps');
  const { db, gateway } = deps;
  const form = await formBody(c);
  const now = deps.now();
  const plans = await cachedPlans(db);
  const plan = plans.byCode(form.plan ?? '');
  const errors: FieldErrors = {};
  if (!plan || !plan.active) errors.plan = 'Plan: choose one of the plans';
  const checked = validateCard(form, now);
  if (!checked.ok) Object.assign(errors, checked.errors);
  if (Object.keys(errors).length) return plansPage(c, { status: 400, errors, form, message: 'Check the fields marked below.' });
  const card = (checked as { ok: true; card: CardInput }).card;
  const args = { userId: user.id, key: form.idempotency_key ?? '', action: 'subscribe', now };
  checkFormKey(args.key);

  // One read before the gateway sees the card: a repeat of this form, or a customer who already subscribes, attaches
  // nothing. Then checkoutLive (store.ts): two transactions around the charge.
  const submit = async (): Promise<FormOutcome> => {
    // with no live subscription, the id a new one gets: taken here, so checkoutLive writes it in one statement
    const seen = (await db.one<{ repeat: boolean; live_id: number | null; live_status: string | null; new_id: number | null }>(sql`SELECT
        EXISTS (SELECT 1 FROM billing_requests WHERE user_id = ${user.id} AND idempotency_key = ${args.key}) AS repeat, s.id AS live_id, s.status AS live_status,
        CASE WHEN s.id IS NULL THEN ${nextSubscriptionId} END AS new_id
      FROM (SELECT 1) one LEFT JOIN subscriptions s ON s.user_id = ${user.id} AND s.status <> 'canceled'`))!;
    if (seen.repeat) return firstOutcome(db, args, submit);
    if (seen.live_status && seen.live_status !== 'incomplete') return { status: 303, location: '/account?done=already' };
    const attached = await attach(c, card);
    if (!attached.ok) return { status: 402, message: attached.message };
    return checkoutLive(db, gateway, { ...args, planId: plan!.id, liveId: seen.live_id === null ? undefined : Number(seen.live_id),
      newId: seen.new_id === null ? undefined : Number(seen.new_id), card: attached.card },
      (r) => chargeOutcome(r, 'subscribed'));
  };
  const out = await submit();
  // after a decline the card fields start empty: the next attempt is another card
  return respond(c, out, (status, message) => plansPage(c, { status, message, form: { plan: form.plan ?? '' } }));
});

// ── /account: the billing section ────────────────────────────────────────────────────────────────────────────────

interface SubView {
  id: number; status: string; plan: PlanRow; pending: PlanRow | null; periodStart: Date; periodEnd: Date;
  cancelAtPeriodEnd: boolean; endedAt: Date | null; endReason: string | null;
}

async function currentView(c: Context<Env>, plans: Plans): Promise<SubView | undefined> {
  const { db } = c.get('deps');
  const id = await currentSubscriptionId(db, c.get('user')!.id);
  if (id === undefined) return undefined;
  const r = await db.one<any>(sql`SELECT * FROM subscriptions WHERE id = ${id}`);
  return {
    id: r.id, status: r.status, plan: plans.byId(r.plan_id), pending: r.pending_plan_id ? plans.byId(r.pending_plan_id) : null,
    periodStart: r.current_period_start, periodEnd: r.current_period_end, cancelAtPeriodEnd: r.cancel_at_period_end,
    endedAt: r.ended_at, endReason: r.end_reason,
  };
}

/** The billing part of the subscriber's account page (pending payments are reconciled first). */
export async function billingSection(c: Context<Env>): Promise<Html> {
  const user = c.get('user')!;
  const deps = c.get('deps');
  const { db } = deps;
  await reconcilePending(db, deps.gateway, deps.now(), { userId: user.id }).catch((e) => deps.log(`[billing] reconcile for user ${user.id}: ${e.message}`));
  const plans = await cachedPlans(db);
  const s = await currentView(c, plans);
  const card = await cardOnFile(db, user.id);
  const history = await db.query<any>(sql`SELECT id, kind, attempt, amount_cents, currency, status, failure_reason, created_at, refund_cents
    FROM payments WHERE user_id = ${user.id} ORDER BY created_at DESC, id DESC LIMIT 50`);
  const live = s && (s.status === 'active' || s.status === 'past_due');
  // an upgrade charges now: only while the last payment went through (past_due first settles its renewal)
  const upgrades = s?.status === 'active' ? plans.list.filter((p) => p.active && p.interval === s.plan.interval && p.monthlyCents > s.plan.monthlyCents) : [];
  const downgrades = live ? plans.list.filter((p) => p.active && p.interval === s.plan.interval && p.monthlyCents < s.plan.monthlyCents) : [];
  const nextAmount = s && (s.pending ?? s.plan).priceCents;

  return html`<section class="card subscription" aria-labelledby="sub-h">
    <h2 id="sub-h">Subscription</h2>
    ${!s ? html`<p>You have no subscription yet.</p><p><a class="button" href="/plans">Choose a plan</a></p>`
    : s.status === 'canceled' ? html`<p>Your ${s.plan.name} subscription ended on ${day(s.endedAt!)}.</p>
      <p><a class="button" href="/plans">Subscribe again</a></p>`
    : s.status === 'incomplete' ? html`<dl class="facts"><dt>Plan</dt><dd>${s.plan.name}</dd>
      <dt>Status</dt><dd><span class="badge sub-incomplete" id="sub-status">${STATUS.incomplete}</span></dd></dl>
      <p>Your first payment did not go through.</p><p><a class="button" href="/plans?plan=${s.plan.code}">Try another card</a></p>`
    : html`<dl class="facts">
      <dt>Plan</dt><dd id="sub-plan">${s.plan.name} — ${money(s.plan.priceCents, s.plan.currency)} / ${per(s.plan)}</dd>
      <dt>Status</dt><dd><span class="badge sub-${s.status}" id="sub-status">${STATUS[s.status]}</span>${s.cancelAtPeriodEnd ? html` <span class="badge warn">ends ${day(s.periodEnd)}</span>` : ''}</dd>
      ${s.cancelAtPeriodEnd
        ? html`<dt>Access until</dt><dd id="sub-ends">${day(s.periodEnd)} (no further charges)</dd>`
        : html`<dt>Next billing date</dt><dd id="sub-next-date">${day(s.periodEnd)}</dd>
          <dt>Next amount</dt><dd id="sub-next-amount">${money(nextAmount!, s.plan.currency)}${s.pending ? html` (${s.pending.name}, from ${day(s.periodEnd)})` : ''}</dd>`}
      <dt>Card</dt><dd id="sub-card">${card ? `${card.brand === 'card' ? 'Card' : card.brand[0].toUpperCase() + card.brand.slice(1)} ending ${card.last4}, expires ${String(card.expMonth).padStart(2, '0')}/${String(card.expYear).slice(-2)}` : 'none on file'}</dd>
    </dl>
    ${s.status === 'past_due' ? html`<p class="form-error" role="alert">Your last payment failed. Update your card below: we retry at once.</p>` : ''}
    <div class="actions">
      ${s.cancelAtPeriodEnd
        ? html`<form method="post" action="/account/resume">${keyField()}<button type="submit">Resume subscription</button></form>`
        : html`${upgrades.map((p) => html`<a class="button" href="/account/upgrade?plan=${p.code}">Upgrade to ${p.name}</a>`)}
          ${downgrades.filter((p) => p.id !== s.pending?.id).map((p) => html`<form method="post" action="/account/downgrade">${keyField()}
            <input type="hidden" name="plan" value="${p.code}"><button type="submit" class="secondary">Downgrade to ${p.name} at period end</button></form>`)}
          <form method="post" action="/account/cancel">${keyField()}<button type="submit" class="danger">Cancel at period end</button></form>`}
    </div>`}
  </section>
  ${live ? html`<section class="card" aria-labelledby="card-h">
    <h2 id="card-h">Update your card</h2>
    <form method="post" action="/account/card" novalidate>${keyField()}${cardFields({}, {})}
      <p><button type="submit" class="secondary">Save card</button></p></form>
  </section>` : ''}
  ${history.length ? html`<section class="card" aria-labelledby="pay-h">
    <h2 id="pay-h">Payment history</h2>
    <div class="table-wrap"><table class="data payments">
      <thead><tr><th scope="col">Date</th><th scope="col">What</th><th scope="col" class="num">Amount</th><th scope="col">Status</th><th scope="col">Receipt</th></tr></thead>
      <tbody>${history.map((p) => html`<tr><td class="nowrap">${day(p.created_at)}</td>
        <td>${KIND[p.kind] ?? p.kind}${p.attempt > 1 ? ` (attempt ${p.attempt})` : ''}</td>
        <td class="num">${money(p.amount_cents, p.currency)}</td>
        <td><span class="badge pay-${p.status}">${p.status === 'pending' ? 'processing' : p.status}</span>${p.failure_reason ? html` <span class="muted small">${p.failure_reason.replace(/_/g, ' ')}</span>` : ''}</td>
        <td>${p.status === 'succeeded' || p.status === 'refunded' ? html`<a href="/account/receipts/${p.id}">Receipt<span class="visually-hidden"> for ${day(p.created_at)}</span></a>` : '—'}</td></tr>`)}</tbody>
    </table></div>
  </section>` : ''}`;
}

// ── account actions ──────────────────────────────────────────────────────────────────────────────────────────────

/** Runs an account action once per form key, against the user's live subscription; answers with its outcome. */
async function accountAction(c: Context<Env>, action: string, fn: (ctx: { subId: number; form: Record<string, string>; plans: Plans; now: Date }) => Promise<FormOutcome>,
  render?: (status: number, message?: string, form?: Record<string, string>) => Response | Promise<Response>) {
  const user = c.get('user')!;
  const deps = c.get('deps');
  const form = await formBody(c);
  const now = deps.now();
  const out = await runOnce(deps.db, { userId: user.id, key: form.idempotency_key ?? '', action, now }, async () => {
    const live = await deps.db.one<{ id: number }>(sql`SELECT id FROM subscriptions WHERE user_id = ${user.id} AND status IN ('active', 'past_due')`);
    if (!live) return { status: 409, message: 'You have no active subscription to change.', store: false };
    const plans = await cachedPlans(deps.db);
    try { return await fn({ subId: live.id, form, plans, now }); } catch (err) { return billingError(err); }
  });
  return respond(c, out, (status, message) => render ? render(status, message, form) : errorPage(c, status, message ?? 'The change failed.'));
}

function errorPage(c: Context<Env>, status: number, message: string) {
  return c.html(page(c, { title: 'Your subscription', body: html`<main class="narrow"><h1>Your subscription</h1>${formError(message)}
    <p><a href="/account">Back to your account</a></p></main>` }), status as 200);
}

billing.post('/account/cancel', (c) => accountAction(c, 'cancel', async ({ subId, now }) => {
  await c.get('deps').db.tx((q) => applyLive(q, subId, { type: 'request_cancel', at: now.getTime() }));
  return { status: 303, location: '/account?done=cancel' };
}));

billing.post('/account/resume', (c) => accountAction(c, 'resume', async ({ subId, now }) => {
  await c.get('deps').db.tx((q) => applyLive(q, subId, { type: 'revert_cancel', at: now.getTime() }));
  return { status: 303, location: '/account?done=resume' };
}));

billing.post('/account/downgrade', (c) => accountAction(c, 'downgrade', async ({ subId, form, plans, now }) => {
  const to = plans.byCode(form.plan ?? '');
  if (!to) return { status: 400, message: 'Plan: choose a plan to downgrade to.', store: false };
  await c.get('deps').db.tx((q) => applyLive(q, subId, { type: 'schedule_downgrade', at: now.getTime(), toPlanId: to.id }, plans));
  return { status: 303, location: '/account?done=downgrade' };
}));

async function upgradePage(c: Context<Env>, o: { planCode?: string; status?: number; message?: string } = {}) {
  const deps = c.get('deps');
  const plans = await cachedPlans(deps.db);
  const s = await currentView(c, plans);
  if (!s || s.status === 'canceled' || s.status === 'incomplete') return c.redirect('/plans', 303);
  const to = plans.byCode(o.planCode ?? c.req.query('plan') ?? '');
  if (s.status !== 'active' || !to || to.interval !== s.plan.interval || to.monthlyCents <= s.plan.monthlyCents) {
    return errorPage(c, o.status ?? 400, s.status !== 'active' ? 'Only an active subscription can be upgraded: settle the overdue payment first.'
      : `Choose a plan that costs more than ${s.plan.name}.`);
  }
  const now = deps.now().getTime();
  const cents = prorationCents(s.plan, to, s.periodStart.getTime(), s.periodEnd.getTime(), now);
  const card = await cardOnFile(deps.db, c.get('user')!.id);
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, { title: `Upgrade to ${to.name}`, body: html`<main class="narrow"><h1>Upgrade to ${to.name}</h1>
  ${formError(o.message)}
  <section class="card">
    <dl class="facts">
      <dt>From</dt><dd>${s.plan.name} — ${money(s.plan.priceCents, s.plan.currency)} / ${per(s.plan)}</dd>
      <dt>To</dt><dd>${to.name} — ${money(to.priceCents, to.currency)} / ${per(to)}</dd>
      <dt>Due today</dt><dd id="proration-amount"><strong>${money(cents, to.currency)}</strong></dd>
      <dt>Then</dt><dd>${money(to.priceCents, to.currency)} on ${day(s.periodEnd)} and every ${per(to)} after</dd>
      <dt>Card</dt><dd>${card ? `ending ${card.last4}` : 'none on file — add one on your account page first'}</dd>
    </dl>
    <p class="muted small">Today's amount is the price difference for the rest of the current period (until ${day(s.periodEnd)}).</p>
    <form method="post" action="/account/upgrade">${keyField()}<input type="hidden" name="plan" value="${to.code}">
      <div class="actions"><button type="submit">Pay ${money(cents, to.currency)} and upgrade</button><a class="button secondary" href="/account">Keep ${s.plan.name}</a></div>
    </form>
  </section></main>` }), (o.status ?? 200) as 200);
}

billing.get('/account/upgrade', (c) => upgradePage(c));

billing.post('/account/upgrade', (c) => accountAction(c, 'upgrade', async ({ subId, form, plans, now }) => {
  const deps = c.get('deps');
  const to = plans.byCode(form.plan ?? '');
  if (!to) return { status: 400, message: 'Plan: choose a plan to upgrade to.', store: false };
  const card = await cardOnFile(deps.db, c.get('user')!.id);
  if (!card) return { status: 409, message: 'Add a card on your account page before upgrading.', store: false };
  const r = await chargeLive(deps.db, deps.gateway, subId, (sub) => {
    const prefix = `${periodKeyPrefix(sub.id, sub.periodStart)}upgrade:${to.id}:`;
    const attempt = sub.periodKeys.filter((k) => k.startsWith(prefix)).length + 1;
    if (attempt > 10) throw new BillingError('too many upgrade attempts in this period; try again next period');
    return { type: 'upgrade', at: now.getTime(), toPlanId: to.id, attempt };
  }, { token: card.token, offSession: false });
  return chargeOutcome(r, 'upgrade');
}, (status, message, form) => upgradePage(c, { planCode: form?.plan ?? '', status, message })));

billing.post('/account/card', async (c) => {
  const user = c.get('user')!;
  const deps = c.get('deps');
  const form = await formBody(c);
  const now = deps.now();
  const checked = validateCard(form, now);
  if (!checked.ok) return cardPage(c, 400, 'Check the card fields.', form, checked.errors);
  const out = await runOnce(deps.db, { userId: user.id, key: form.idempotency_key ?? '', action: 'card', now }, async () => {
    const attached = await attach(c, checked.card);
    if (!attached.ok) return { status: 402, message: attached.message };
    const live = await deps.db.one<{ id: number; status: string }>(sql`SELECT id, status FROM subscriptions WHERE user_id = ${user.id} AND status IN ('active', 'past_due')`);
    if (live?.status === 'past_due') {
      // a past-due subscription is retried at once with the new card (the next dunning attempt, made now)
      const r = await chargeLive(deps.db, deps.gateway, live.id, (sub) => sub.status === 'past_due'
        ? { type: 'retry', at: now.getTime(), attempt: sub.dueAttempts + 1 } : null, { token: attached.card.token, offSession: false });
      if ((r.kind === 'settled' && r.result.status === 'succeeded') || r.kind === 'pending') await saveCard(deps.db, user.id, attached.card, now);
      return chargeOutcome(r, 'card_recovered');
    }
    await saveCard(deps.db, user.id, attached.card, now);
    return { status: 303, location: '/account?done=card' };
  });
  return respond(c, out, (status, message) => cardPage(c, status, message ?? 'The card was not saved.', {}, {}));
});

function cardPage(c: Context<Env>, status: number, message: string, form: Record<string, string>, errors: FieldErrors) {
  return c.html(page(c, { title: 'Update your card', body: html`<main class="narrow"><h1>Update your card</h1>
  <section class="card">${formError(message)}
    <form method="post" action="/account/card" novalidate>${keyField()}${cardFields(form, errors)}
      <div class="actions"><button type="submit">Save card</button><a class="button secondary" href="/account">Back to your account</a></div></form>
  </section></main>` }), status as 200);
}

// ── receipts ─────────────────────────────────────────────────────────────────────────────────────────────────────
billing.get('/account/receipts/:paymentId', async (c) => {
  const user = c.get('user')!;
  const { db } = c.get('deps');
  const id = Number(c.req.param('paymentId'));
  if (!Number.isSafeInteger(id) || id <= 0) throw notFound('No such receipt');
  const p = await db.one<any>(sql`SELECT p.*, s.plan_id, u.email, u.display_name FROM payments p JOIN subscriptions s ON s.id = p.subscription_id
    JOIN users u ON u.id = p.user_id WHERE p.id = ${id} AND p.user_id = ${user.id} AND p.status IN ('succeeded', 'refunded')`);
  if (!p) throw notFound('No such receipt');
  const plans = await cachedPlans(db);
  const plan = plans.byId(p.plan_id);
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, { title: `Receipt ${p.id}`, body: html`<main class="narrow receipt">
  <p class="no-print"><a href="/account">← Your account</a> · <span class="muted">Print this page or save it as PDF from your browser's print dialog.</span></p>
  <article class="card receipt-card">
    <h1>Receipt</h1>
    <dl class="facts">
      <dt>Receipt number</dt><dd>MQ-${String(p.id).padStart(8, '0')}</dd>
      <dt>Date paid</dt><dd>${day(p.settled_at ?? p.created_at)}</dd>
      <dt>Billed to</dt><dd>${p.display_name} (${p.email})</dd>
    </dl>
    <table class="data"><thead><tr><th scope="col">Description</th><th scope="col">Period</th><th scope="col" class="num">Amount</th></tr></thead>
      <tbody><tr><td>Marquee ${plan.name} — ${p.kind === 'proration' ? 'upgrade, prorated for the rest of the period' : p.kind === 'initial' ? 'first period' : 'renewal'}</td>
        <td class="nowrap">${day(p.period_start)} – ${day(p.period_end)}</td><td class="num">${money(p.amount_cents, p.currency)}</td></tr>
      ${p.status === 'refunded' ? html`<tr><td>Refund (${day(p.refunded_at)})</td><td></td><td class="num">−${money(p.refund_cents, p.currency)}</td></tr>` : ''}</tbody>
      <tfoot><tr><th scope="row" colspan="2">Total paid</th><td class="num"><strong>${money(p.amount_cents - (p.refund_cents ?? 0), p.currency)}</strong></td></tr></tfoot>
    </table>
    <p class="muted small">Payment reference ${p.idempotency_key}</p>
  </article></main>` }));
});

