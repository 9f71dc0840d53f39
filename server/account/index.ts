// The signed-in user's own account: profile (display name), change password (forced after an admin reset), and
// "sign out everywhere". Every change is audited in the same transaction.
import { Hono, type Context } from 'hono';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { checkPassword, hashPassword, passwordProblem } from '../auth/password.ts';
import { endAllSessions, rotateSession, clearSessionCookie } from '../auth/session.ts';
import { field, formBody, formError, notice, safeNext, type FieldErrors } from '../auth/forms.ts';
import { writeAudit } from '../admin/audit.ts';
import { beginAttempt, finishAttempt, deviceHashFrom } from '../auth/throttle.ts';
import { clientIp } from '../auth/client-ip.ts';
import { billingSection, BILLING_NOTICES } from '../billing/routes.ts';
import { apiTokensSection } from '../auth/api-tokens.ts';

export const account = new Hono<Env>();

const NOTICES: Record<string, string> = {
  profile: 'Your profile is saved.',
  password: 'Your password is changed. Every other session of yours has been signed out.',
  token_revoked: 'The API token is revoked: requests with it are refused from now on.',
};

interface Profile { id: number; email: string; display_name: string; role: string; created_at: Date; last_login_at: Date | null }

async function profilePage(c: Context<Env>, o: { name?: string; errors?: FieldErrors; message?: string; status?: number } = {}) {
  const user = c.get('user')!;
  const db = c.get('deps').db;
  const me = (await db.one<Profile>(sql`SELECT id, email, display_name, role, created_at, last_login_at FROM users WHERE id = ${user.id}`))!;
  const sessions = await db.query<{ created_at: Date; last_seen_at: Date; ip: string | null; user_agent: string | null; current: boolean }>(
    sql`SELECT created_at, last_seen_at, host(ip) AS ip, user_agent, id_hash = ${c.get('sessionIdHash') ?? null} AS current
        FROM sessions WHERE user_id = ${user.id} AND expires_at > ${c.get('deps').now()} ORDER BY last_seen_at DESC LIMIT 20`);
  const subscription = user.role === 'subscriber' ? await billingSection(c) : '';
  const when = (d: Date | null) => d ? d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : 'never';
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Your account',
    body: html`<main class="narrow">
  <h1>Your account</h1>
  ${notice(NOTICES[c.req.query('done') ?? ''] ?? BILLING_NOTICES[c.req.query('done') ?? ''])}
  ${subscription}
  <section class="card">
    <dl class="facts">
      <dt>Email</dt><dd>${me.email}</dd>
      <dt>Role</dt><dd><span class="badge role-${me.role}">${me.role}</span></dd>
      <dt>Member since</dt><dd>${when(me.created_at)}</dd>
      <dt>Last sign-in</dt><dd>${when(me.last_login_at)}</dd>
    </dl>
  </section>
  <section class="card">
    <h2>Profile</h2>
    ${formError(o.message)}
    <form method="post" action="/account" novalidate>
      ${field({ name: 'display_name', label: 'Display name', value: o.name ?? me.display_name, error: o.errors?.display_name, required: true, maxlength: 200, autocomplete: 'name' })}
      <p><button type="submit">Save profile</button></p>
    </form>
  </section>
  <section class="card">
    <h2>Password</h2>
    <p><a class="button secondary" href="/account/password">Change password</a></p>
  </section>
  <section class="card">
    <h2>Sessions</h2>
    <div class="table-wrap"><table><thead><tr><th>Signed in</th><th>Last active</th><th>Address</th><th>Browser</th></tr></thead><tbody>
    ${sessions.map((s) => html`<tr><td class="nowrap">${when(s.created_at)}${s.current ? html`<br><span class="badge">this browser</span>` : ''}</td>
      <td class="nowrap">${when(s.last_seen_at)}</td><td>${s.ip ?? '—'}</td><td class="ua" title="${s.user_agent ?? ''}">${(s.user_agent ?? '—').slice(0, 80)}</td></tr>`)}
    </tbody></table></div>
    <form method="post" action="/account/sign-out-everywhere"><p><button type="submit" class="secondary">Sign out everywhere</button></p></form>
  </section>
  ${apiTokensSection(c)}
</main>`,
  }), (o.status ?? 200) as 200);
}

account.get('/account', (c) => profilePage(c));

account.post('/account', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  const name = (form.display_name ?? '').trim();
  const errors: FieldErrors = {};
  if (!name) errors.display_name = 'Enter a display name';
  else if (name.length > 200) errors.display_name = 'Use at most 200 characters';
  if (Object.keys(errors).length) return profilePage(c, { name, errors, status: 400, message: 'The profile was not saved.' });
  await c.get('deps').db.tx(async (q) => {
    const before = await q.one<{ display_name: string }>(sql`SELECT display_name FROM users WHERE id = ${user.id} FOR UPDATE`);
    if (before?.display_name === name) return;
    await q.query(sql`UPDATE users SET display_name = ${name} WHERE id = ${user.id}`);
    await writeAudit(q, c, { action: 'account.update', targetType: 'user', targetId: user.id,
      before: { display_name: before?.display_name }, after: { display_name: name } });
  });
  return c.redirect('/account?done=profile', 303);
});

function passwordPage(c: Context<Env>, o: { errors?: FieldErrors; message?: string; status?: number } = {}) {
  const user = c.get('user')!;
  const next = safeNext(c.req.query('next'), '');
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Change password',
    body: html`<main class="narrow auth"><div class="card auth-card">
  <h1>Change password</h1>
  ${user.mustChangePassword ? html`<p class="notice" role="status">Your password was reset by an administrator. Choose a new one to continue.</p>` : ''}
  ${formError(o.message)}
  <form method="post" action="/account/password${next ? `?next=${encodeURIComponent(next)}` : ''}" novalidate>
    <input type="text" name="username" value="${user.email}" autocomplete="username" hidden>
    ${field({ name: 'current_password', label: user.mustChangePassword ? 'Temporary password' : 'Current password', type: 'password', error: o.errors?.current_password, required: true, autocomplete: 'current-password' })}
    ${field({ name: 'new_password', label: 'New password', type: 'password', error: o.errors?.new_password, required: true, autocomplete: 'new-password', hint: 'At least 10 characters.' })}
    ${field({ name: 'confirm_password', label: 'New password again', type: 'password', error: o.errors?.confirm_password, required: true, autocomplete: 'new-password' })}
    <p><button type="submit">Change password</button></p>
  </form>
</div></main>`,
  }), (o.status ?? 200) as 200);
}

account.get('/account/password', (c) => passwordPage(c));

account.post('/account/password', async (c) => {
  const user = c.get('user')!;
  const deps = c.get('deps');
  const form = await formBody(c);
  const current = form.current_password ?? '', next = form.new_password ?? '', confirm = form.confirm_password ?? '';
  const errors: FieldErrors = {};
  if (!current) errors.current_password = 'Enter your current password';
  const problem = next ? passwordProblem(next, user.email) : 'Choose a new password';
  if (problem) errors.new_password = problem;
  else if (next === current) errors.new_password = 'Choose a password different from the current one';
  if (!problem && next !== confirm) errors.confirm_password = 'The two new passwords differ';
  if (Object.keys(errors).length) return passwordPage(c, { errors, status: 400, message: 'The password was not changed.' });
  // The current-password check is a sign-in attempt: throttled on the account's counters, so a stolen session cannot
  // guess the password at full speed.
  const gate = await beginAttempt(deps.db, { account: user.email, ip: clientIp(c), deviceHash: deviceHashFrom(c), now: deps.now() });
  if (!gate.ok) {
    c.header('Retry-After', String(gate.retryAfterS));
    return passwordPage(c, { status: 429, message: `Too many wrong passwords. Try again in ${gate.retryAfterS} second${gate.retryAfterS === 1 ? '' : 's'}.` });
  }
  const row = await deps.db.one<{ password_hash: string | null }>(sql`SELECT password_hash FROM users WHERE id = ${user.id}`);
  if (!(await checkPassword(row?.password_hash, current))) {
    await finishAttempt(deps.db, gate.attemptId, false);
    return passwordPage(c, { errors: { current_password: 'That is not your current password' }, status: 400, message: 'The password was not changed.' });
  }
  const hash = await hashPassword(next);
  await deps.db.tx(async (q) => {
    await finishAttempt(q, gate.attemptId, true);
    await q.query(sql`UPDATE users SET password_hash = ${hash}, must_change_password = false WHERE id = ${user.id}`);
    const ended = await endAllSessions(q, user.id);
    c.set('sessionIdHash', undefined);
    await rotateSession(c, q, user.id);
    await writeAudit(q, c, { action: 'user.password_change', targetType: 'user', targetId: user.id,
      after: { sessions_ended: ended, forced: user.mustChangePassword } });
  });
  const target = safeNext(c.req.query('next'), '');
  // After a forced change (first sign-in, admin reset) people go on to their work; otherwise back to the account.
  return c.redirect(target || (user.mustChangePassword ? '/' : '/account?done=password'), 303);
});

account.post('/account/sign-out-everywhere', async (c) => {
  const user = c.get('user')!;
  await c.get('deps').db.tx(async (q) => {
    const ended = await endAllSessions(q, user.id);
    await writeAudit(q, c, { action: 'user.sign_out_everywhere', targetType: 'user', targetId: user.id, after: { sessions_ended: ended } });
  });
  clearSessionCookie(c);
  return c.redirect('/login', 303);
});
