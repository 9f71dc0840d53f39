// Self-service sign-up: a subscriber account, created when the address's owner opens the confirmation link mailed to
// it (server/mail/outbox.ts), then signed in. Staff accounts are created by admins only.
import { Hono, type Context } from 'hono';
import sql from 'sql-template-tag';
import type { Env } from '../types.ts';
import { page, html, type Html } from '../html.ts';
import { hashPassword, passwordProblem } from './password.ts';
import { rotateSession } from './session.ts';
import { rememberDevice } from './throttle.ts';
import { field, formBody, formError, safeNext, type FieldErrors } from './forms.ts';
import { writeAudit } from '../admin/audit.ts';
import { clientIp } from './client-ip.ts';
import type { Queryable } from '../db/index.ts';
import { createHash, randomBytes } from 'node:crypto';
import { requestHost } from './host.ts';
import { sendMail } from '../mail/outbox.ts';
import { keyedQueue } from '../db/keyed-queue.ts';

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
 * Sign-up attempts per client address and hour that get as far as hashing a password (a confirmation link sent, or
 * a notice to an address that has an account). Beyond it the form answers 429 before any hashing: this bounds the CPU a
 * client can burn on argon2 and how fast it can probe which emails have accounts. Counted from the audit log, which
 * records both outcomes with their address. The limit is config.signupsPerIpHour (MARQUEE_SIGNUPS_PER_IP_HOUR).
 */
const SIGNUP_ACTIONS = ['user.signup_requested', 'user.signup_refused'];
// sign-ups from one address wait their turn in this process before taking a connection (db/keyed-queue.ts)
const addressTurn = keyedQueue();
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

/** How long a confirmation link works. */
export const SIGNUP_LINK_HOURS = 24;

const sha256 = (token: string) => createHash('sha256').update(token).digest();

function card(c: Context<Env>, title: string, inner: Html, status = 200) {
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, { title, body: html`<main class="narrow auth"><div class="card auth-card">${inner}</div></main>` }), status as 200);
}

function signupPage(c: Context<Env>, o: { values?: Record<string, string>; errors?: FieldErrors; message?: string; status?: number } = {}) {
  const next = safeNext(o.values?.next ?? c.req.query('next'), '');
  const v = o.values ?? {};
  return card(c, 'Create your account', html`
  <h1>Create your account</h1>
  <p class="muted">A subscriber account: your profile, sessions and password; a plan is chosen at /plans once you are
    signed in. We send a link to your email address to confirm it.</p>
  ${formError(o.message)}
  <form method="post" action="/signup" novalidate>
    ${next ? html`<input type="hidden" name="next" value="${next}">` : ''}
    ${field({ name: 'display_name', label: 'Your name', value: v.display_name, error: o.errors?.display_name, required: true, autocomplete: 'name', maxlength: 200 })}
    ${field({ name: 'email', label: 'Email', type: 'email', value: v.email, error: o.errors?.email, required: true, autocomplete: 'email' })}
    ${field({ name: 'password', label: 'Password', type: 'password', error: o.errors?.password, required: true, autocomplete: 'new-password', hint: 'At least 10 characters, not a common password.' })}
    ${field({ name: 'confirm_password', label: 'Password again', type: 'password', error: o.errors?.confirm_password, required: true, autocomplete: 'new-password' })}
    <p><button type="submit">Create account</button></p>
  </form>
  <p class="muted">Already have an account? <a href="/login${next ? `?next=${encodeURIComponent(next)}` : ''}">Sign in</a></p>`, o.status);
}

/** The one answer to an accepted sign-up, whether or not the address already has an account. */
const checkEmailPage = (c: Context<Env>, email: string) => card(c, 'Check your email', html`
  <h1>Check your email</h1>
  <p role="status">We sent a message to <b>${email}</b>. Open the link in it within ${SIGNUP_LINK_HOURS} hours to finish
    creating your account.</p>
  <p class="muted">Nothing arrived? Check the address and your spam folder, or <a href="/signup">sign up again</a>.
    Already have an account? <a href="/login">Sign in</a>.</p>`);

signup.get('/signup', async (c) => c.get('user') ? c.redirect(safeNext(c.req.query('next'), '/account'), 303) : signupPage(c));

/**
 * A sign-up answers the same page, status and work whether or not the address has an account (an argon2id hash,
 * one transaction, one audit row, one message): only the address's owner learns which, from the message. A new
 * address gets a one-time confirmation link (the account is created when it is used); a known one a notice.
 */
signup.post('/signup', async (c) => {
  const deps = c.get('deps');
  const form = await formBody(c);
  const values = { display_name: (form.display_name ?? '').trim(), email: (form.email ?? '').trim(), next: form.next ?? '' };
  const errors = accountProblems(values);
  const password = form.password ?? '';
  const problem = password ? passwordProblem(password, values.email) : 'Choose a password';
  if (problem) errors.password = problem;
  else if (password !== (form.confirm_password ?? '')) errors.confirm_password = 'The two passwords differ';
  if (Object.keys(errors).length) return signupPage(c, { values, errors, status: 400, message: 'The account was not created.' });
  const ip = clientIp(c);
  const tooMany = (waitS: number) => {
    c.header('Retry-After', String(waitS));
    return signupPage(c, { values, status: 429,
      message: `Too many sign-ups from your network in the last hour. Try again in ${Math.ceil(waitS / 60)} minute${waitS > 60 ? 's' : ''}.` });
  };
  const early = ip ? await signupWaitS(deps.db, ip, deps.now(), deps.config.signupsPerIpHour) : 0;
  if (early) return tooMany(early);
  const hash = await hashPassword(password);
  const token = randomBytes(32).toString('base64url');
  const now = deps.now();
  let refusedWaitS = 0;
  let known = false;
  await addressTurn(ip, () => deps.db.tx(async (q) => {
    if (ip) {
      // parallel attempts from one address queue here (first in this process, without a connection), so the limit holds exactly
      await q.query(sql`SELECT pg_advisory_xact_lock(${SIGNUP_LOCK}::int4, hashtext(${ip}))`);
      refusedWaitS = await signupWaitS(q, ip, now, deps.config.signupsPerIpHour);
      if (refusedWaitS) return;
    }
    await q.query(sql`DELETE FROM signup_requests WHERE expires_at <= ${now}`);
    known = !!(await q.one(sql`SELECT 1 FROM users WHERE lower(email) = lower(${values.email})`));
    if (known) {
      // recorded (without the email) so that probing which emails have accounts counts against the address's limit
      await writeAudit(q, c, { action: 'user.signup_refused', targetType: 'user', after: { reason: 'email taken' } });
    } else {
      await q.query(sql`INSERT INTO signup_requests (token_hash, email, display_name, password_hash, next_path, ip, created_at, expires_at)
        VALUES (${sha256(token)}, ${values.email}, ${values.display_name}, ${hash}, ${safeNext(values.next, '') || null}, ${ip}::inet,
                ${now}, ${new Date(now.getTime() + SIGNUP_LINK_HOURS * 3_600_000)})`);
      await writeAudit(q, c, { action: 'user.signup_requested', targetType: 'signup', after: { email: values.email } });
    }
  }));
  if (refusedWaitS) return tooMany(refusedWaitS);
  const site = deps.publicOrigins.originFor(requestHost(c), deps.config.secureCookies);
  await sendMail(deps.config.outboxDir, known ? {
    to: values.email,
    subject: 'Someone tried to create a Marquee account with your address',
    text: `Someone (perhaps you) asked to create a Marquee account for ${values.email}, which already has one.\n`
      + 'Nothing was changed.\n\n'
      + `If it was you, sign in at ${site}/login\n`
      + 'If you forgot your password, ask an administrator to reset it.\n\n'
      + 'If it was not you, you can ignore this message.\n',
  } : {
    to: values.email,
    subject: 'Confirm your Marquee account',
    text: `Someone (hopefully you) asked to create a Marquee account for ${values.email}.\n\n`
      + `To confirm and sign in, open this link within ${SIGNUP_LINK_HOURS} hours (it works once):\n\n`
      + `${site}/signup/confirm?token=${token}\n\n`
      + 'If it was not you, ignore this message: no account is created.\n',
  }, now);
  return checkEmailPage(c, values.email);
});

const badLink = (c: Context<Env>) => card(c, 'Link not valid', html`
  <h1>This link does not work</h1>
  <p class="form-error" role="alert">The confirmation link is wrong, was already used, or is more than ${SIGNUP_LINK_HOURS} hours old.</p>
  <p><a class="button" href="/signup">Sign up again</a> <a class="button secondary" href="/login">Sign in</a></p>`, 400);

const tokenOf = (v: string | undefined) => (v && /^[\w-]{43}$/.test(v) ? v : undefined);

// GET only shows a button: mail scanners and link previews fetch links, and must not use the one-time token.
signup.get('/signup/confirm', async (c) => {
  const token = tokenOf(c.req.query('token'));
  const deps = c.get('deps');
  const row = token && await deps.db.one<{ email: string }>(sql`SELECT email FROM signup_requests
    WHERE token_hash = ${sha256(token)} AND expires_at > ${deps.now()}`);
  if (!row) return badLink(c);
  return card(c, 'Confirm your account', html`
  <h1>Confirm your account</h1>
  <p>Create the subscriber account for <b>${row.email}</b> and sign in.</p>
  <form method="post" action="/signup/confirm"><input type="hidden" name="token" value="${token}">
    <p><button type="submit">Create my account</button></p></form>`);
});

signup.post('/signup/confirm', async (c) => {
  const deps = c.get('deps');
  const token = tokenOf((await formBody(c)).token);
  if (!token) return badLink(c);
  const now = deps.now();
  type Outcome = { kind: 'bad' } | { kind: 'taken' } | { kind: 'created'; next: string | null };
  let outcome: Outcome;
  try {
    outcome = await deps.db.tx(async (q): Promise<Outcome> => {
      const r = await q.one<{ email: string; display_name: string; password_hash: string; next_path: string | null }>(sql`
        DELETE FROM signup_requests WHERE token_hash = ${sha256(token)} AND expires_at > ${now}
        RETURNING email, display_name, password_hash, next_path`);
      if (!r) return { kind: 'bad' };
      if (await q.one(sql`SELECT 1 FROM users WHERE lower(email) = lower(${r.email})`)) return { kind: 'taken' };
      const row = await q.one<{ id: number }>(sql`INSERT INTO users (email, display_name, role, password_hash, created_at, last_login_at)
        VALUES (${r.email}, ${r.display_name}, 'subscriber', ${r.password_hash}, ${now}, ${now}) RETURNING id`);
      await writeAudit(q, c, { action: 'user.signup', actorId: row!.id, targetType: 'user', targetId: row!.id,
        after: { email: r.email, display_name: r.display_name, role: 'subscriber' } });
      await rememberDevice(c, q, row!.id);
      await rotateSession(c, q, row!.id);
      return { kind: 'created', next: r.next_path };
    });
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    outcome = { kind: 'taken' }; // created by a parallel confirmation of another link for the same address
  }
  if (outcome.kind === 'bad') return badLink(c);
  if (outcome.kind === 'taken') {
    return card(c, 'Account exists', html`<h1>This address already has an account</h1>
  <p>Sign in with its password, or ask an administrator to reset it.</p><p><a class="button" href="/login">Sign in</a></p>`, 409);
  }
  return c.redirect(safeNext(outcome.next, '/account'), 303);
});
