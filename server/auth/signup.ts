// Self-service sign-up: creates a subscriber account and signs it in. Staff accounts are created by admins only.
import { Hono, type Context } from 'hono';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html } from '../html.ts';
import { hashPassword, passwordProblem } from './password.ts';
import { rotateSession } from './session.ts';
import { rememberDevice } from './throttle.ts';
import { field, formBody, formError, safeNext, type FieldErrors } from './forms.ts';
import { writeAudit } from '../admin/audit.ts';
import { clientIp } from './client-ip.ts';
import type { Queryable } from '../db/index.ts';

export const signup = new Hono<Env>();

// The database rule (users.email CHECK): one @, no spaces; "admin@localhost" is a valid operator address.
export const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;

/** Shared checks for a new account's email and display name (signup, admin create, CLI). */
export function accountProblems(v: { email?: string; display_name?: string }): FieldErrors {
  const errors: FieldErrors = {};
  if (v.email !== undefined) {
    if (!v.email) errors.email = 'Enter an email address';
    else if (v.email.length > 254 || !EMAIL_RE.test(v.email)) errors.email = 'Enter an email address like name@example.com';
  }
  if (v.display_name !== undefined) {
    if (!v.display_name) errors.display_name = 'Enter a name';
    else if (v.display_name.length > 200) errors.display_name = 'Use at most 200 characters';
  }
  return errors;
}

/**
 * Sign-up attempts per client address and hour that get as far as hashing a password (a created account, or one
 * refused because the email is taken). Beyond it the form answers 429 before any hashing: this bounds the CPU a
 * client can burn on argon2 and how fast it can probe which emails have accounts. Counted from the audit log, which
 * records both outcomes with their address. The limit is config.signupsPerIpHour (MARQUEE_SIGNUPS_PER_IP_HOUR).
 */
const SIGNUP_ACTIONS = ['user.signup', 'user.signup_refused'];
const SIGNUP_LOCK = 720_110_006; // pg_advisory_xact_lock(int, int) namespace: "marquee signup throttle"

/** Seconds until this address may try again (0: now). */
async function signupWaitS(q: Queryable, ip: string, now: Date, limit: number): Promise<number> {
  const since = new Date(now.getTime() - 3_600_000);
  const row = await q.one<{ n: number; oldest: Date | null }>(sql`SELECT count(*)::int AS n, min(at) AS oldest FROM (
      SELECT at FROM audit_log WHERE ip = ${ip}::inet AND action = ANY(${SIGNUP_ACTIONS}) AND at > ${since}
      ORDER BY at DESC LIMIT ${limit}) recent`);
  if (row!.n < limit) return 0;
  return Math.max(1, Math.ceil((row!.oldest!.getTime() + 3_600_000 - now.getTime()) / 1000));
}

export const isUniqueViolation = (e: unknown) => (e as { code?: string })?.code === '23505';

function signupPage(c: Context<Env>, o: { values?: Record<string, string>; errors?: FieldErrors; message?: string; status?: number } = {}) {
  const next = safeNext(o.values?.next ?? c.req.query('next'), '');
  const v = o.values ?? {};
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'Create your account',
    body: html`<main class="narrow auth"><div class="card auth-card">
  <h1>Create your account</h1>
  <p class="muted">A subscriber account: your profile, sessions and password. Plans and payments are not yet on the web.</p>
  ${formError(o.message)}
  <form method="post" action="/signup" novalidate>
    ${next ? html`<input type="hidden" name="next" value="${next}">` : ''}
    ${field({ name: 'display_name', label: 'Your name', value: v.display_name, error: o.errors?.display_name, required: true, autocomplete: 'name', maxlength: 200 })}
    ${field({ name: 'email', label: 'Email', type: 'email', value: v.email, error: o.errors?.email, required: true, autocomplete: 'email' })}
    ${field({ name: 'password', label: 'Password', type: 'password', error: o.errors?.password, required: true, autocomplete: 'new-password', hint: 'At least 10 characters.' })}
    ${field({ name: 'confirm_password', label: 'Password again', type: 'password', error: o.errors?.confirm_password, required: true, autocomplete: 'new-password' })}
    <p><button type="submit">Create account</button></p>
  </form>
  <p class="muted">Already have an account? <a href="/login${next ? `?next=${encodeURIComponent(next)}` : ''}">Sign in</a></p>
</div></main>`,
  }), (o.status ?? 200) as 200);
}

signup.get('/signup', (c) => c.get('user') ? c.redirect(safeNext(c.req.query('next'), '/account'), 303) : signupPage(c));

signup.post('/signup', async (c) => {
  const deps = c.get('deps');
  const form = await formBody(c);
  const values = { display_name: (form.display_name ?? '').trim(), email: (form.email ?? '').trim(), next: form.next ?? '' };
  const errors = accountProblems(values);
  const password = form.password ?? '';
  const problem = password ? passwordProblem(password, values.email) : 'Choose a password';
  if (problem) errors.password = problem;
  else if (password !== (form.confirm_password ?? '')) errors.confirm_password = 'The two passwords differ';
  const fail = (errs: FieldErrors) => signupPage(c, { values, errors: errs, status: 400, message: 'The account was not created.' });
  if (Object.keys(errors).length) return fail(errors);
  const ip = clientIp(c);
  const tooMany = (waitS: number) => {
    c.header('Retry-After', String(waitS));
    return signupPage(c, { values, status: 429,
      message: `Too many sign-ups from your network in the last hour. Try again in ${Math.ceil(waitS / 60)} minute${waitS > 60 ? 's' : ''}.` });
  };
  const early = ip ? await signupWaitS(deps.db, ip, deps.now(), deps.config.signupsPerIpHour) : 0;
  if (early) return tooMany(early);
  const hash = await hashPassword(password);
  let refusedWaitS = 0;
  try {
    await deps.db.tx(async (q) => {
      if (ip) {
        // parallel attempts from one address queue here, so the limit holds exactly
        await q.query(sql`SELECT pg_advisory_xact_lock(${SIGNUP_LOCK}::int4, hashtext(${ip}))`);
        refusedWaitS = await signupWaitS(q, ip, deps.now(), deps.config.signupsPerIpHour);
        if (refusedWaitS) return;
      }
      const row = await q.one<{ id: number }>(sql`INSERT INTO users (email, display_name, role, password_hash, created_at, last_login_at)
        VALUES (${values.email}, ${values.display_name}, 'subscriber', ${hash}, ${deps.now()}, ${deps.now()}) RETURNING id`);
      await writeAudit(q, c, { action: 'user.signup', actorId: row!.id, targetType: 'user', targetId: row!.id,
        after: { email: values.email, display_name: values.display_name, role: 'subscriber' } });
      await rememberDevice(c, q, row!.id);
      await rotateSession(c, q, row!.id);
    });
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    // recorded (without the email) so that probing which emails have accounts counts against the address's limit
    await deps.db.tx((q) => writeAudit(q, c, { action: 'user.signup_refused', targetType: 'user', after: { reason: 'email taken' } }));
    return fail({ email: 'An account with this email already exists — sign in instead' });
  }
  if (refusedWaitS) return tooMany(refusedWaitS);
  return c.redirect(safeNext(values.next), 303);
});
