// Sign-in and sign-out. POST /login takes the form fields `email` and `password` from a same-origin form post and
// answers with a fresh session cookie and a 303 to `next` (a local path) — the interface other tools rely on.
import { Hono, type Context } from 'hono';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { checkPassword, hashPassword, isLegacyHash, needsRehash } from './password.ts';
import { rotateSession, endSession, clearSessionCookie } from './session.ts';
import { writeAudit } from '../admin/audit.ts';
import { beginAttempt, finishAttempt, deviceHashFrom, rememberDevice } from './throttle.ts';
import { clientIp } from './client-ip.ts';
import { field, formBody, formError, safeNext, type FieldErrors } from './forms.ts';

export const login = new Hono<Env>();

function loginPage(c: Context<Env>, o: { email?: string; next?: string; errors?: FieldErrors; message?: string; status?: number }) {
  const next = safeNext(o.next, '');
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Sign in',
    body: html`<main class="narrow auth"><div class="card auth-card">
  <h1>Sign in</h1>
  ${formError(o.message)}
  <form method="post" action="/login" class="stack" novalidate>
    ${next ? html`<input type="hidden" name="next" value="${next}">` : ''}
    ${field({ name: 'email', label: 'Email', type: 'email', value: o.email, error: o.errors?.email, required: true, autocomplete: 'username', autofocus: !o.email })}
    ${field({ name: 'password', label: 'Password', type: 'password', error: o.errors?.password, required: true, autocomplete: 'current-password', autofocus: !!o.email })}
    <p><button type="submit">Sign in</button></p>
  </form>
  <p class="muted">New to Marquee? <a href="/signup${next ? `?next=${encodeURIComponent(next)}` : ''}">Create an account</a></p>
</div></main>`,
  }), (o.status ?? 200) as 200);
}

const waitText = (s: number) => s < 90 ? `${s} second${s === 1 ? '' : 's'}` : `${Math.ceil(s / 60)} minutes`;

login.get('/login', async (c) => {
  const next = c.req.query('next');
  if (c.get('user')) return c.redirect(safeNext(next), 303);
  return loginPage(c, { next });
});

login.post('/login', async (c) => {
  const deps = c.get('deps');
  const form = await formBody(c);
  const email = (form.email ?? '').trim();
  const password = form.password ?? '';
  const next = form.next ?? c.req.query('next');
  const errors: FieldErrors = {};
  if (!email) errors.email = 'Enter your email address';
  else if (email.length > 254 || !/^[^@\s]+@[^@\s]+$/.test(email)) errors.email = 'Enter an email address like name@example.com';
  if (!password) errors.password = 'Enter your password';
  else if (password.length > 1000) errors.password = 'That password is too long';
  if (Object.keys(errors).length) return loginPage(c, { email, next, errors, status: 400 });

  const gate = await beginAttempt(deps.db, { account: email, ip: clientIp(c), deviceHash: deviceHashFrom(c), now: deps.now() });
  if (!gate.ok) {
    c.header('Retry-After', String(gate.retryAfterS));
    return loginPage(c, { email, next, status: 429,
      message: `Too many failed sign-in attempts. Try again in ${waitText(gate.retryAfterS)}.` });
  }
  const user = await deps.db.one<{ id: number; password_hash: string | null; status: string; must_change_password: boolean }>(
    sql`SELECT id, password_hash, status, must_change_password FROM users WHERE lower(email) = lower(${email})`);
  const ok = await checkPassword(user?.password_hash, password);
  if (!ok || !user || user.status !== 'active') await finishAttempt(deps.db, gate.attemptId, false);
  if (!ok || !user) {
    return loginPage(c, { email, next, status: 401, message: 'That email and password do not match an account.' });
  }
  if (user.status !== 'active') {
    return loginPage(c, { email, next, status: 403, message: 'This account is disabled. Ask an administrator to enable it.' });
  }
  const rehash = needsRehash(user.password_hash!) ? await hashPassword(password) : undefined;
  await deps.db.tx(async (q) => {
    if (rehash) {
      // Only if unchanged meanwhile (a concurrent password change wins).
      const changed = await q.query(sql`UPDATE users SET password_hash = ${rehash} WHERE id = ${user.id} AND password_hash = ${user.password_hash} RETURNING 1`);
      if (changed.length && isLegacyHash(user.password_hash!)) {
        await writeAudit(q, c, { action: 'user.password_upgrade', actorId: user.id, targetType: 'user', targetId: user.id,
          before: { hash: 'sha256' }, after: { hash: 'argon2id' } });
      }
    }
    await finishAttempt(q, gate.attemptId, true);
    await rememberDevice(c, q, user.id);
    await q.query(sql`UPDATE users SET last_login_at = ${deps.now()} WHERE id = ${user.id}`);
    await rotateSession(c, q, user.id);
  });
  if (user.must_change_password) {
    const target = safeNext(next, '');
    return c.redirect(`/account/password${target ? `?next=${encodeURIComponent(target)}` : ''}`, 303);
  }
  return c.redirect(safeNext(next), 303);
});

login.post('/logout', async (c) => {
  const idHash = c.get('sessionIdHash');
  if (idHash) await endSession(c.get('deps').db, idHash);
  clearSessionCookie(c);
  return c.redirect('/login', 303);
});
