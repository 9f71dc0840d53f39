// /admin/users: the admins' user management — a searchable, paginated list; create; edit name/role/status; reset
// password (temporary password shown once); disable/enable; end sessions; the user's subscriptions and payments.
// Plain HTML forms (no JavaScript); a refused change re-renders the form with the message beside the field.
import { Hono, type Context } from 'hono';
import sql, { join, empty } from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { ROLES, type Role } from '../auth/roles.ts';
import { field, selectField, formBody, formError, notice, type FieldErrors } from '../auth/forms.ts';
import { clearSessionCookie } from '../auth/session.ts';
import { HttpError } from '../errors.ts';
import { auditContext } from './audit.ts';
import { createAccount, updateAccount, resetPassword, setStatus, signOutUser, UserOpError, STATUSES,
  type UserRow, type Status } from './user-ops.ts';
import { auditTable, loadAudit } from './audit-page.ts';
import { when, day, money, badge, pager, pageParam } from './ui.ts';

export const adminUsers = new Hono<Env>();

/** A refused operation that is not a form problem (an unknown user): the product's error page. */
const asHttp = (e: unknown) => e instanceof UserOpError ? new HttpError(e.status, e.message) : e;

export const PAGE_SIZE = 25;
const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (m) => '\\' + m)}%`;

// ── list ───────────────────────────────────────────────────────────────────────────────────────────────────────────
adminUsers.get('/admin/users', async (c) => {
  const db = c.get('deps').db;
  const q = (c.req.query('q') ?? '').trim().slice(0, 200);
  const role = ROLES.includes(c.req.query('role') as Role) ? c.req.query('role')! : '';
  const status = STATUSES.includes(c.req.query('status') as Status) ? c.req.query('status')! : '';
  const pageNo = pageParam(c.req.query('page'));
  const conds = [sql`true`];
  if (q) {
    const id = /^\d{1,15}$/.test(q) ? Number(q) : null;
    const pattern = likePattern(q.toLowerCase());
    conds.push(sql`(lower(u.email) LIKE ${pattern} OR lower(u.display_name) LIKE ${pattern}${id !== null ? sql` OR u.id = ${id}` : empty})`);
  }
  if (role) conds.push(sql`u.role = ${role}`);
  if (status) conds.push(sql`u.status = ${status}`);
  const where = join(conds, ' AND ');
  const [{ n: total }] = await db.query<{ n: number }>(sql`SELECT count(*) AS n FROM users u WHERE ${where}`);
  // Page the users first, then look up plans for those 25 rows only (a deep OFFSET must not run the lateral join
  // for every skipped row).
  const rows = await db.query<UserRow & { plan: string | null; sub_status: string | null }>(sql`
    WITH page AS (
      SELECT u.id, u.email, u.display_name, u.role, u.status, u.created_at, u.last_login_at FROM users u
      WHERE ${where} ORDER BY u.created_at DESC, u.id DESC LIMIT ${PAGE_SIZE} OFFSET ${(pageNo - 1) * PAGE_SIZE})
    SELECT page.*, p.name AS plan, s.status AS sub_status
    FROM page
    LEFT JOIN LATERAL (SELECT plan_id, status FROM subscriptions WHERE user_id = page.id
                       ORDER BY status <> 'canceled' DESC, created_at DESC LIMIT 1) s ON true
    LEFT JOIN plans p ON p.id = s.plan_id
    ORDER BY page.created_at DESC, page.id DESC`);
  const filters = { q, role, status };
  return c.html(page(c, {
    title: 'Users',
    body: html`<main>
  <div class="page-head"><h1>Users</h1><a class="button" href="/admin/users/new">New user</a></div>
  <form method="get" action="/admin/users" class="filters" role="search">
    <div class="field"><label for="f-q">Search</label><input id="f-q" type="search" name="q" value="${q}" placeholder="email, name or id"></div>
    ${selectField({ name: 'role', label: 'Role', options: [['', 'Any role'], ...ROLES.map((r) => [r, r] as [string, string])], value: role })}
    ${selectField({ name: 'status', label: 'Status', options: [['', 'Any status'], ['active', 'active'], ['disabled', 'disabled']], value: status })}
    <div class="field"><button type="submit">Filter</button></div>
  </form>
  <div class="table-wrap"><table class="data">
    <thead><tr><th>Email</th><th>Name</th><th>Role</th><th>Status</th><th>Plan</th><th>Created</th><th>Last sign-in</th></tr></thead>
    <tbody>
    ${rows.length ? rows.map((u) => html`<tr>
      <td><a href="/admin/users/${u.id}">${u.email}</a></td><td>${u.display_name}</td>
      <td>${badge(`role-${u.role}`, u.role)}</td><td>${badge(`status-${u.status}`, u.status)}</td>
      <td>${u.plan ? html`${u.plan}${u.sub_status !== 'active' ? html` <span class="muted">(${u.sub_status})</span>` : ''}` : html`<span class="muted">—</span>`}</td>
      <td>${day(u.created_at)}</td><td>${when(u.last_login_at)}</td></tr>`)
      : html`<tr><td colspan="7" class="muted">No users match.</td></tr>`}
    </tbody></table></div>
  ${pager('/admin/users', filters, pageNo, total, PAGE_SIZE)}
</main>`,
  }));
});

// ── create ─────────────────────────────────────────────────────────────────────────────────────────────────────────
function newUserPage(c: Context<Env>, o: { values?: Record<string, string>; errors?: FieldErrors; message?: string; status?: number } = {}) {
  const v = o.values ?? {};
  return c.html(page(c, {
    title: 'New user',
    body: html`<main class="narrow">
  <p><a href="/admin/users">← Users</a></p>
  <h1>New user</h1>
  ${formError(o.message)}
  <form method="post" action="/admin/users" class="card" novalidate>
    ${field({ name: 'email', label: 'Email', type: 'email', value: v.email, error: o.errors?.email, required: true })}
    ${field({ name: 'display_name', label: 'Name', value: v.display_name, error: o.errors?.display_name, required: true, maxlength: 200 })}
    ${selectField({ name: 'role', label: 'Role', options: ROLES, value: v.role ?? 'analyst', error: o.errors?.role })}
    <p class="muted">A temporary password is generated and shown once; the user must change it at first sign-in.</p>
    <p><button type="submit">Create user</button></p>
  </form>
</main>`,
  }), (o.status ?? 200) as 200);
}

function temporaryPasswordPage(c: Context<Env>, o: { title: string; user: { id: number; email: string }; password: string; intro: string }) {
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: o.title,
    body: html`<main class="narrow">
  <h1>${o.title}</h1>
  <div class="card">
    <p>${o.intro}</p>
    <p>Temporary password for <b>${o.user.email}</b>:</p>
    <p><code class="secret" id="temporary-password">${o.password}</code></p>
    <p class="muted">Shown only this once — it is not stored anywhere readable. Hand it over securely; the user must choose a new
      password when signing in with it.</p>
  </div>
  <p><a class="button" href="/admin/users/${o.user.id}">Go to the user</a> <a href="/admin/users">All users</a></p>
</main>`,
  }));
}

adminUsers.get('/admin/users/new', (c) => newUserPage(c));

adminUsers.post('/admin/users', async (c) => {
  const form = await formBody(c);
  const values = { email: (form.email ?? '').trim(), display_name: (form.display_name ?? '').trim(), role: form.role ?? '' };
  try {
    const created = await createAccount(c.get('deps').db, auditContext(c),
      { email: values.email, displayName: values.display_name, role: values.role as Role });
    return temporaryPasswordPage(c, { title: 'User created', user: { id: created.id, email: values.email },
      password: created.temporaryPassword!, intro: `${values.email} can now sign in as ${values.role}.` });
  } catch (e) {
    if (e instanceof UserOpError) {
      return newUserPage(c, { values, errors: e.field ? { [e.field]: e.message } : undefined, message: e.field ? 'The user was not created.' : e.message, status: e.status });
    }
    throw asHttp(e);
  }
});

// ── one user ───────────────────────────────────────────────────────────────────────────────────────────────────────
const NOTICES: Record<string, string> = {
  saved: 'Saved.',
  disabled: 'The user is disabled and signed out everywhere.',
  enabled: 'The user is enabled.',
  'signed-out': 'All of the user\'s sessions have ended.',
  unchanged: 'Nothing changed.',
};

function userId(c: Context<Env>): number {
  const id = Number(c.req.param('id'));
  if (!/^\d{1,15}$/.test(c.req.param('id') ?? '') || id <= 0) throw new HttpError(404, `There is no user ${c.req.param('id')}`);
  return id;
}


async function userPage(c: Context<Env>, o: { values?: Record<string, string>; errors?: FieldErrors; message?: string; status?: number } = {}) {
  const db = c.get('deps').db;
  const id = userId(c);
  const u = await db.one<UserRow>(sql`SELECT id, email, display_name, role, status, must_change_password, created_at,
    last_login_at, simulated FROM users WHERE id = ${id}`);
  if (!u) throw new HttpError(404, `There is no user ${id}`);
  const [subs, payments, sessions, audit] = await Promise.all([
    db.query(sql`SELECT s.id, p.name AS plan, s.status, s.created_at, s.current_period_start, s.current_period_end,
        s.cancel_at_period_end, pp.name AS pending_plan, s.ended_at, s.end_reason
      FROM subscriptions s JOIN plans p ON p.id = s.plan_id LEFT JOIN plans pp ON pp.id = s.pending_plan_id
      WHERE s.user_id = ${id} ORDER BY s.created_at DESC LIMIT 20`),
    db.query(sql`SELECT id, created_at, kind, attempt, amount_cents, currency, status, failure_reason, refund_cents, period_start
      FROM payments WHERE user_id = ${id} ORDER BY created_at DESC, id DESC LIMIT 50`),
    db.one<{ n: number; last: Date | null }>(sql`SELECT count(*) AS n, max(last_seen_at) AS last FROM sessions
      WHERE user_id = ${id} AND expires_at > ${c.get('deps').now()}`),
    loadAudit(db, { target: String(id) }, 1, 10),
  ]);
  const v = { display_name: u.display_name, role: u.role, status: u.status, ...(o.values ?? {}) };
  return c.html(page(c, {
    title: u.email,
    body: html`<main>
  <p><a href="/admin/users">← Users</a></p>
  <div class="page-head"><h1>${u.display_name} <span class="muted">${u.email}</span></h1>
    <div>${badge(`role-${u.role}`, u.role)} ${badge(`status-${u.status}`, u.status)}
      ${u.must_change_password ? badge('warn', 'must change password') : ''} ${u.simulated ? badge('', 'simulated') : ''}</div></div>
  ${notice(NOTICES[c.req.query('done') ?? ''])}
  <div class="grid-2">
    <section class="card">
      <h2>Edit</h2>
      ${formError(o.message)}
      <form method="post" action="/admin/users/${u.id}" novalidate>
        ${field({ name: 'display_name', label: 'Name', value: v.display_name, error: o.errors?.display_name, required: true, maxlength: 200 })}
        ${selectField({ name: 'role', label: 'Role', options: ROLES, value: v.role, error: o.errors?.role })}
        ${selectField({ name: 'status', label: 'Status', options: STATUSES, value: v.status, error: o.errors?.status })}
        <p class="muted">Changing the role or status signs the user out everywhere.</p>
        <p><button type="submit">Save changes</button></p>
      </form>
    </section>
    <section class="card">
      <h2>Account</h2>
      <dl class="facts">
        <dt>User id</dt><dd>${u.id}</dd>
        <dt>Created</dt><dd>${when(u.created_at)} UTC</dd>
        <dt>Last sign-in</dt><dd>${u.last_login_at ? html`${when(u.last_login_at)} UTC` : 'never'}</dd>
        <dt>Active sessions</dt><dd>${sessions?.n ?? 0}${sessions?.last ? html` <span class="muted">(last active ${when(sessions.last)} UTC)</span>` : ''}</dd>
      </dl>
      <div class="actions">
        <form method="post" action="/admin/users/${u.id}/reset-password"><button type="submit" class="secondary">Reset password</button></form>
        ${u.status === 'active'
          ? html`<form method="post" action="/admin/users/${u.id}/disable"><button type="submit" class="danger">Disable</button></form>`
          : html`<form method="post" action="/admin/users/${u.id}/enable"><button type="submit" class="secondary">Enable</button></form>`}
        <form method="post" action="/admin/users/${u.id}/sign-out"><button type="submit" class="secondary">Sign out everywhere</button></form>
      </div>
    </section>
  </div>
  <section class="card">
    <h2>Subscriptions</h2>
    <p><a href="/admin/subscribers/${u.id}">Billing: timeline, payments, refunds, cancel</a></p>
    ${subs.length ? html`<div class="table-wrap"><table class="data"><thead><tr><th>Plan</th><th>Status</th><th>Started</th><th>Current period</th><th>Notes</th></tr></thead><tbody>
      ${subs.map((s) => html`<tr><td>${s.plan}</td><td>${badge(`sub-${s.status}`, s.status)}</td><td>${day(s.created_at)}</td>
        <td>${day(s.current_period_start)} → ${day(s.current_period_end)}</td>
        <td>${s.cancel_at_period_end ? 'cancels at period end. ' : ''}${s.pending_plan ? `changes to ${s.pending_plan} at period end. ` : ''}${s.ended_at ? `ended ${day(s.ended_at)} (${s.end_reason})` : ''}</td></tr>`)}
    </tbody></table></div>` : html`<p class="muted">No subscription.</p>`}
  </section>
  <section class="card">
    <h2>Payments</h2>
    ${payments.length ? html`<div class="table-wrap"><table class="data"><thead><tr><th>Date</th><th>Kind</th><th>Attempt</th><th class="num">Amount</th><th>Status</th><th>Details</th></tr></thead><tbody>
      ${payments.map((p) => html`<tr><td>${when(p.created_at)}</td><td>${p.kind}</td><td>${p.attempt}</td>
        <td class="num">${money(p.amount_cents, p.currency)}</td><td>${badge(`pay-${p.status}`, p.status)}</td>
        <td>${p.failure_reason ?? ''}${p.refund_cents ? `refunded ${money(p.refund_cents, p.currency)}` : ''}</td></tr>`)}
    </tbody></table></div>${payments.length === 50 ? html`<p class="muted">The 50 most recent payments.</p>` : ''}` : html`<p class="muted">No payments.</p>`}
  </section>
  <section class="card">
    <h2>Recent audit entries</h2>
    ${auditTable(audit.rows)}
    <p><a href="/admin/audit?target=${u.id}">All audit entries for this user</a></p>
  </section>
</main>`,
  }), (o.status ?? 200) as 200);
}

adminUsers.get('/admin/users/:id', (c) => userPage(c));

/** When an admin removed their own privileges, their sessions are gone too: send them to sign in again. */
function afterOwnChange(c: Context<Env>, targetId: number, sessionsEnded: number) {
  if (targetId === c.get('user')!.id && sessionsEnded > 0) { clearSessionCookie(c); return c.redirect('/login', 303); }
  return undefined;
}

adminUsers.post('/admin/users/:id', async (c) => {
  const id = userId(c);
  const form = await formBody(c);
  const values = { display_name: (form.display_name ?? '').trim(), role: form.role ?? '', status: form.status ?? '' };
  try {
    const r = await updateAccount(c.get('deps').db, auditContext(c), id,
      { displayName: values.display_name, role: values.role as Role, status: values.status as Status });
    return afterOwnChange(c, id, r.sessionsEnded) ?? c.redirect(`/admin/users/${id}?done=${r.changed.length ? 'saved' : 'unchanged'}`, 303);
  } catch (e) {
    if (e instanceof UserOpError && e.status !== 404) {
      return userPage(c, { values, errors: e.field ? { [e.field]: e.message } : undefined, message: e.field ? 'Nothing was changed.' : e.message, status: e.status });
    }
    throw asHttp(e);
  }
});

for (const [action, status] of [['disable', 'disabled'], ['enable', 'active']] as const) {
  adminUsers.post(`/admin/users/:id/${action}`, async (c) => {
    const id = userId(c);
    try {
      const r = await setStatus(c.get('deps').db, auditContext(c), id, status);
      return afterOwnChange(c, id, r.sessionsEnded) ?? c.redirect(`/admin/users/${id}?done=${r.changed.length ? `${action}d` : 'unchanged'}`, 303);
    } catch (e) {
      if (e instanceof UserOpError && e.status !== 404) return userPage(c, { message: e.message, status: e.status });
      throw asHttp(e);
    }
  });
}

adminUsers.post('/admin/users/:id/reset-password', async (c) => {
  const id = userId(c);
  const r = await resetPassword(c.get('deps').db, auditContext(c), id).catch((e) => { throw asHttp(e); });
  if (id === c.get('user')!.id) clearSessionCookie(c);
  return temporaryPasswordPage(c, { title: 'Password reset', user: r.user, password: r.temporaryPassword!,
    intro: `${r.user.email} is signed out everywhere (${r.sessionsEnded} session${r.sessionsEnded === 1 ? '' : 's'} ended) and must choose a new password at next sign-in.` });
});

adminUsers.post('/admin/users/:id/sign-out', async (c) => {
  const id = userId(c);
  const ended = await signOutUser(c.get('deps').db, auditContext(c), id).catch((e) => { throw asHttp(e); });
  return afterOwnChange(c, id, ended) ?? c.redirect(`/admin/users/${id}?done=signed-out`, 303);
});
