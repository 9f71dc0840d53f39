// /admin/subscribers/:userId — the staff view of one customer's billing (README "Billing jobs and the staff side"): the subscription timeline from
// subscription_events (every subscription of the customer, reactivations included), the payments with a refund form
// (full or partial, through the gateway: refundLive, audited), and a cancel on the customer's behalf (at period end,
// like the customer's own cancel; audited). Admins act; managers read (no forms are shown to them, and the POST
// routes are admin-only in the route table). Forms carry an idempotency key (one outcome per key, as billing forms
// do) and answer 303 back to the page with the outcome, so a reload never repeats an action.
import { Hono, type Context } from 'hono';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { formBody, notice, formError } from '../auth/forms.ts';
import { HttpError } from '../errors.ts';
import { writeAudit } from './audit.ts';
import { when, day, money, badge } from './ui.ts';
import { BillingError } from '../billing/machine.ts';
import { applyLive, cardOnFile, currentSubscriptionId, refundLive, runOnce, FORM_KEY_RE } from '../billing/store.ts';
import { loadSimulationModel, withSimulatedPayments } from '../billing/jobs.ts';

export const adminSubscribers = new Hono<Env>();

const newKey = () => randomBytes(18).toString('base64url');
const keyField = () => html`<input type="hidden" name="idempotency_key" value="${newKey()}">`;

const DONE: Record<string, string> = {
  refunded: 'The refund went through the payment gateway and is recorded.',
  'refund-pending': 'The payment gateway has not answered yet: the refund is not recorded. Try again in a moment (the same refund is never made twice).',
  canceled: 'The subscription ends at the end of its current period (canceled on the customer\'s behalf).',
};
const ERRORS: Record<string, string> = {
  form: 'The form was incomplete or expired: reload the page and try again.',
  payment: 'Payment: choose a payment of this customer that succeeded.',
  amount: 'Amount: enter an amount in dollars, more than 0 and at most the payment\'s amount.',
  refund: 'The refund was refused (see the audit trail for the gateway\'s answer).',
  'no-subscription': 'This customer has no live subscription to cancel.',
  cancel: 'The subscription cannot be canceled in its current state.',
};

function userIdParam(c: Context<Env>): number {
  const raw = c.req.param('id') ?? '';
  if (!/^\d{1,15}$/.test(raw) || Number(raw) <= 0) throw new HttpError(404, `There is no subscriber ${raw}`);
  return Number(raw);
}

const dollars = (s: string | undefined): number | null => {
  const m = /^\s*\$?(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(s ?? '');
  return m ? Number(m[1]) * 100 + Number((m[2] ?? '0').padEnd(2, '0')) : null;
};

adminSubscribers.get('/admin/subscribers/:id', async (c) => {
  const { db } = c.get('deps');
  const id = userIdParam(c);
  const isAdmin = c.get('user')!.role === 'admin';
  const u = await db.one<any>(sql`SELECT id, email, display_name, role, simulated, created_at FROM users WHERE id = ${id}`);
  if (!u) throw new HttpError(404, `There is no subscriber ${id}`);
  const [subs, events, payments, card] = await Promise.all([
    db.query<any>(sql`SELECT s.id, s.status, s.created_at, s.current_period_start, s.current_period_end, s.cancel_at_period_end,
        s.ended_at, s.end_reason, p.name AS plan, p.price_cents, p.currency, pp.name AS pending_plan, pp.price_cents AS pending_price
      FROM subscriptions s JOIN plans p ON p.id = s.plan_id LEFT JOIN plans pp ON pp.id = s.pending_plan_id
      WHERE s.user_id = ${id} ORDER BY s.created_at DESC, s.id DESC`),
    db.query<any>(sql`SELECT e.subscription_id, e.at, e.type, e.from_status, e.to_status, p.name AS plan, e.mrr_cents, e.data
      FROM subscription_events e JOIN plans p ON p.id = e.plan_id
      WHERE e.user_id = ${id} ORDER BY e.at DESC, e.id DESC LIMIT 300`),
    db.query<any>(sql`SELECT id, subscription_id, created_at, kind, attempt, amount_cents, currency, status, failure_reason, refund_cents,
        refunded_at, period_start, period_end
      FROM payments WHERE user_id = ${id} ORDER BY created_at DESC, id DESC LIMIT 200`),
    cardOnFile(db, id),
  ]);
  const live = subs.find((s) => s.status !== 'canceled');
  const done = DONE[c.req.query('done') ?? ''];
  const error = ERRORS[c.req.query('error') ?? ''];
  return c.html(page(c, {
    title: `Billing · ${u.email}`,
    body: html`<main>
  ${isAdmin ? html`<p><a href="/admin/users/${u.id}">← User ${u.email}</a></p>` : ''}
  <div class="page-head"><h1>${u.display_name} <span class="muted">${u.email}</span></h1>
    <div>${badge(`role-${u.role}`, u.role)} ${u.simulated ? badge('', 'simulated') : ''}</div></div>
  ${notice(done)}${formError(error)}
  <div class="grid-2">
    <section class="card">
      <h2>Subscription</h2>
      ${live ? html`<dl class="facts">
        <dt>Plan</dt><dd id="sub-plan">${live.plan} — ${money(live.price_cents, live.currency)}</dd>
        <dt>Status</dt><dd id="sub-status">${badge(`sub-${live.status}`, live.status)}</dd>
        <dt>Current period</dt><dd>${day(live.current_period_start)} → ${day(live.current_period_end)}</dd>
        <dt>At period end</dt><dd id="sub-next">${live.cancel_at_period_end ? 'ends (cancel requested)'
          : live.pending_plan ? `changes to ${live.pending_plan}, charging ${money(live.pending_price, live.currency)}`
          : live.status === 'active' ? `renews, charging ${money(live.price_cents, live.currency)}` : 'retries running (past due)'}</dd>
        <dt>Payment method</dt><dd>${card ? `${card.brand} ending ${card.last4}, expires ${String(card.expMonth).padStart(2, '0')}/${String(card.expYear).slice(-2)}`
          : u.simulated ? 'simulated (the simulator\'s model decides each charge)' : 'none on file'}</dd>
      </dl>
      ${isAdmin && !live.cancel_at_period_end && live.status !== 'incomplete' ? html`<form method="post" action="/admin/subscribers/${u.id}/cancel">
        ${keyField()}<button type="submit" class="danger">Cancel at period end on the customer's behalf</button></form>` : ''}`
      : html`<p class="muted">No live subscription.</p>`}
    </section>
    <section class="card">
      <h2>Subscriptions</h2>
      ${subs.length ? html`<ul>${subs.map((s) => html`<li>#${s.id} ${s.plan} ${badge(`sub-${s.status}`, s.status)} since ${day(s.created_at)}${s.ended_at ? `, ended ${day(s.ended_at)} (${s.end_reason})` : ''}</li>`)}</ul>`
        : html`<p class="muted">Never subscribed.</p>`}
    </section>
  </div>
  <section class="card">
    <h2>Payments</h2>
    ${payments.length ? html`<div class="table-wrap"><table class="data" id="payments"><thead><tr><th>Date (UTC)</th><th>Kind</th><th>Attempt</th><th>Period</th>
      <th class="num">Amount</th><th>Status</th><th>Details</th>${isAdmin ? html`<th>Refund</th>` : ''}</tr></thead><tbody>
      ${payments.map((p) => html`<tr id="payment-${p.id}"><td>${when(p.created_at)}</td><td>${p.kind}</td><td>${p.attempt}</td>
        <td>${day(p.period_start)} → ${day(p.period_end)}</td><td class="num">${money(p.amount_cents, p.currency)}</td>
        <td>${badge(`pay-${p.status}`, p.status)}</td>
        <td>${p.failure_reason ?? ''}${p.refund_cents ? `refunded ${money(p.refund_cents, p.currency)} on ${day(p.refunded_at)}` : ''}</td>
        ${isAdmin ? html`<td>${p.status === 'succeeded' ? html`<form method="post" action="/admin/subscribers/${u.id}/refund" class="inline">
          ${keyField()}<input type="hidden" name="payment_id" value="${p.id}">
          <label class="visually-hidden" for="refund-${p.id}">Refund amount for payment ${p.id} (dollars)</label>
          <input id="refund-${p.id}" name="amount" inputmode="decimal" size="7" value="${(p.amount_cents / 100).toFixed(2)}">
          <button type="submit" class="secondary">Refund</button></form>` : ''}</td>` : ''}</tr>`)}
    </tbody></table></div>${payments.length === 200 ? html`<p class="muted">The 200 most recent payments.</p>` : ''}` : html`<p class="muted">No payments.</p>`}
  </section>
  <section class="card">
    <h2>Timeline</h2>
    ${events.length ? html`<div class="table-wrap"><table class="data" id="timeline"><thead><tr><th>When (UTC)</th><th>Subscription</th><th>Event</th><th>Status</th><th>Plan</th>
      <th class="num">MRR</th><th>Details</th></tr></thead><tbody>
      ${events.map((e) => html`<tr><td>${when(e.at)}</td><td>#${e.subscription_id}</td><td>${e.type}</td>
        <td>${e.from_status ? `${e.from_status} → ` : ''}${e.to_status}</td><td>${e.plan}</td><td class="num">${money(e.mrr_cents)}</td>
        <td>${Object.keys(e.data ?? {}).length ? JSON.stringify(e.data) : ''}</td></tr>`)}
    </tbody></table></div>${events.length === 300 ? html`<p class="muted">The 300 most recent events.</p>` : ''}` : html`<p class="muted">No events.</p>`}
  </section>
</main>`,
  }));
});

/** What every action on a customer starts with: the customer's id, the form, a redirect back to the customer's page
 *  with a query, and whether the form's idempotency key is well formed (if not, the action answers back('error=form')). */
async function customerAction(c: Context<Env>) {
  const id = userIdParam(c);
  const back = (q: string) => c.redirect(`/admin/subscribers/${id}?${q}`, 303);
  const form = await formBody(c);
  return { deps: c.get('deps'), id, back, form, keyOk: FORM_KEY_RE.test(form.idempotency_key ?? '') };
}

adminSubscribers.post('/admin/subscribers/:id/refund', async (c) => {
  const { deps, id, back, form, keyOk } = await customerAction(c);
  if (!keyOk) return back('error=form');
  const paymentId = /^\d{1,15}$/.test(form.payment_id ?? '') ? Number(form.payment_id) : 0;
  const p = paymentId ? await deps.db.one<any>(sql`SELECT id, status, amount_cents, currency, idempotency_key FROM payments
    WHERE id = ${paymentId} AND user_id = ${id}`) : undefined;
  if (!p || p.status !== 'succeeded') return back('error=payment');
  const cents = dollars(form.amount);
  if (cents === null || cents < 1 || cents > p.amount_cents) return back('error=amount');
  const now = deps.now();
  const gateway = withSimulatedPayments(deps.db, deps.gateway, () => loadSimulationModel(deps.db));
  const out = await runOnce(deps.db, { userId: c.get('user')!.id, key: form.idempotency_key, action: 'admin_refund', now }, async () => {
    const audit = { action: 'billing.refund', targetType: 'payment', targetId: p.id, before: { status: p.status, amount_cents: p.amount_cents } };
    try {
      const r = await refundLive(deps.db, gateway, p.id, cents, now);
      if ('pending' in r) return { status: 303, location: `/admin/subscribers/${id}?done=refund-pending` };
      await writeAudit(deps.db, c, { ...audit, after: { status: 'refunded', refund_cents: cents, user_id: id, key: `refund:${p.idempotency_key}` } });
      return { status: 303, location: `/admin/subscribers/${id}?done=refunded` };
    } catch (err) {
      if (!(err instanceof BillingError)) throw err;
      await writeAudit(deps.db, c, { ...audit, after: { refused: err.message, refund_cents: cents, user_id: id } });
      return { status: 303, location: `/admin/subscribers/${id}?error=refund` };
    }
  });
  return c.redirect(out.location!, 303);
});

adminSubscribers.post('/admin/subscribers/:id/cancel', async (c) => {
  const { deps, id, back, form, keyOk } = await customerAction(c);
  if (!keyOk) return back('error=form');
  const now = deps.now();
  const out = await runOnce(deps.db, { userId: c.get('user')!.id, key: form.idempotency_key, action: 'admin_cancel', now }, async () => {
    const subId = await currentSubscriptionId(deps.db, id);
    const s = subId === undefined ? undefined : await deps.db.one<any>(sql`SELECT status FROM subscriptions WHERE id = ${subId}`);
    if (!s || s.status === 'canceled') return { status: 303, location: `/admin/subscribers/${id}?error=no-subscription` };
    try {
      await deps.db.tx(async (q) => {
        const tr = await applyLive(q, subId!, { type: 'request_cancel', at: now.getTime() });
        if (!tr.duplicate) {
          await writeAudit(q, c, { action: 'billing.cancel', targetType: 'subscription', targetId: subId!, before: { cancel_at_period_end: false },
            after: { cancel_at_period_end: true, effective_at: new Date(tr.sub.periodEnd).toISOString(), user_id: id, on_behalf: true } });
        }
      });
    } catch (err) {
      if (err instanceof BillingError) return { status: 303, location: `/admin/subscribers/${id}?error=cancel` };
      throw err;
    }
    return { status: 303, location: `/admin/subscribers/${id}?done=canceled` };
  });
  return c.redirect(out.location!, 303);
});
