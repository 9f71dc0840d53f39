// Personal API tokens for scripts (README "Sharing: embeds and API tokens"): `Authorization: Bearer mq_…` on /api/*
// acts as the token's owner, with the owner's current role. A token is 256 random bits shown once; the table keeps only
// its SHA-256 (like sessions), a name, an expiry and whether it was revoked. Each token may make
// MARQUEE_API_TOKEN_RATE requests per minute in one process (a token bucket); beyond that: 429 with Retry-After.
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import type { Env, SessionUser } from '../types.ts';
import { HttpError, isApi } from '../errors.ts';
import { page, html } from '../html.ts';
import { hashToken } from './session.ts';
import { field, formBody, formError, type FieldErrors } from './forms.ts';
import { writeAudit, auditContext, type AuditContext } from '../admin/audit.ts';

export const TOKEN_PREFIX = 'mq_';
export const DEFAULT_TOKEN_DAYS = 90;
export const MAX_TOKEN_DAYS = 365;
const USED_EVERY_MS = 60_000;

export class TokenInputError extends HttpError {}

/** The name and lifetime of a new token, checked: errors name the field. */
export function checkTokenInput(name: string | undefined, days: string | number | undefined): { name: string; days: number } {
  const errors: FieldErrors = {};
  const n = (name ?? '').trim();
  if (!n) errors.name = 'Give the token a name (what script uses it)';
  else if (n.length > 100) errors.name = 'Use at most 100 characters';
  const d = days === undefined || days === '' ? DEFAULT_TOKEN_DAYS : Number(days);
  if (!Number.isInteger(d) || d < 1 || d > MAX_TOKEN_DAYS) errors.days = `Days must be a whole number from 1 to ${MAX_TOKEN_DAYS}`;
  if (Object.keys(errors).length) throw new TokenInputError(400, `The token was not created: ${Object.values(errors).join('; ')}`, errors);
  return { name: n, days: d };
}

export interface NewToken { id: number; token: string; expiresAt: Date }

/** Creates a token for the user (audited in the same transaction); the token itself is returned once, never stored. */
export async function createApiToken(db: Db, audit: AuditContext, userId: number, input: { name?: string; days?: string | number }): Promise<NewToken> {
  const { name, days } = checkTokenInput(input.name, input.days);
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const expiresAt = new Date(audit.now.getTime() + days * 86_400_000);
  return db.tx(async (q) => {
    const row = await q.one<{ id: number }>(sql`INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at, expires_at)
      VALUES (${userId}, ${name}, ${hashToken(token)}, ${token.slice(0, 10)}, ${audit.now}, ${expiresAt}) RETURNING id`);
    await writeAudit(q, audit, { action: 'api_token.create', targetType: 'user', targetId: userId,
      after: { token_id: row!.id, name, expires_at: expiresAt.toISOString() } });
    return { id: row!.id, token, expiresAt };
  });
}

/** Revokes one of the user's own tokens; false when the user has no such token. */
export async function revokeApiToken(db: Db, audit: AuditContext, userId: number, tokenId: number): Promise<boolean> {
  return db.tx(async (q) => {
    const row = await q.one<{ id: number }>(sql`UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ${audit.now})
      WHERE id = ${tokenId} AND user_id = ${userId} RETURNING id`);
    if (!row) return false;
    await writeAudit(q, audit, { action: 'api_token.revoke', targetType: 'user', targetId: userId, after: { token_id: tokenId } });
    return true;
  });
}

export interface TokenRow { id: number; name: string; prefix: string; created_at: Date; expires_at: Date; last_used_at: Date | null; revoked_at: Date | null }

export function listApiTokens(q: Queryable, userId: number): Promise<TokenRow[]> {
  return q.query<TokenRow>(sql`SELECT id, name, prefix, created_at, expires_at, last_used_at, revoked_at
    FROM api_tokens WHERE user_id = ${userId} ORDER BY created_at DESC, id DESC LIMIT 100`);
}

// ── Bearer authentication and the per-token rate limit ─────────────────────────────────────────────────────────────

interface Bucket { tokens: number; at: number }
const buckets = new Map<number, Bucket>();

/** Takes one request from the token's bucket: 0 when allowed, else the seconds until one is available. */
export function takeRequest(tokenId: number, perMinute: number, nowMs: number): number {
  const rate = perMinute / 60_000; // requests per ms
  const b = buckets.get(tokenId) ?? { tokens: perMinute, at: nowMs };
  b.tokens = Math.min(perMinute, b.tokens + Math.max(0, nowMs - b.at) * rate);
  b.at = nowMs;
  if (buckets.size > 10_000 && !buckets.has(tokenId)) buckets.clear(); // bounded memory: forget idle tokens' buckets
  buckets.set(tokenId, b);
  if (b.tokens >= 1) { b.tokens -= 1; return 0; }
  return Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000));
}

const unauthorized = (message: string) => new HttpError(401, message, undefined,
  { 'WWW-Authenticate': 'Bearer realm="marquee", error="invalid_token"' });

/**
 * On /api/*: a request with `Authorization: Bearer <token>` is its owner's (c.get('user')), whatever cookie it carries.
 * A token that is unknown, expired, revoked or whose owner is disabled is a 401; over the rate, a 429. Runs after the
 * session middleware and before `authorize`, which then checks the owner's role like a signed-in user's.
 */
export const bearerAuth: MiddlewareHandler<Env> = async (c, next) => {
  const header = c.req.header('authorization');
  if (header === undefined || !isApi(c.req.path)) return next();
  const m = /^Bearer +([A-Za-z0-9_-]{1,200})$/i.exec(header.trim());
  if (!m) throw unauthorized('The Authorization header must be "Bearer <token>" with a token from /account');
  const deps = c.get('deps');
  const now = deps.now();
  const row = await deps.db.one<{ token_id: number; expires_at: Date; revoked_at: Date | null; last_used_at: Date | null } & {
    id: number; email: string; display_name: string; role: SessionUser['role']; status: string }>(
    sql`SELECT t.id AS token_id, t.expires_at, t.revoked_at, t.last_used_at, u.id, u.email, u.display_name, u.role, u.status
      FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ${hashToken(m[1])}`);
  if (!row) throw unauthorized('Unknown API token');
  if (row.revoked_at) throw unauthorized('This API token was revoked');
  if (row.expires_at.getTime() <= now.getTime()) throw unauthorized('This API token has expired; create a new one on /account');
  if (row.status !== 'active') throw unauthorized('The owner of this API token is disabled');
  const wait = takeRequest(row.token_id, deps.config.apiTokenRate, now.getTime());
  if (wait) {
    throw new HttpError(429, `Too many requests with this token (at most ${deps.config.apiTokenRate} a minute); retry in ${wait} s`,
      undefined, { 'Retry-After': String(wait) });
  }
  if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() >= USED_EVERY_MS) {
    await deps.db.query(sql`UPDATE api_tokens SET last_used_at = ${now} WHERE id = ${row.token_id}`);
  }
  c.set('user', { id: row.id, email: row.email, displayName: row.display_name, role: row.role, mustChangePassword: false });
  c.set('sessionIdHash', undefined);
  await next();
};

// ── /account: list, create (shown once), revoke ───────────────────────────────────────────────────────────────────

const when = (d: Date | null) => d ? d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC' : 'never';

/** The "API tokens" card of /account. */
export async function apiTokensSection(c: Context<Env>, o: { errors?: FieldErrors; name?: string; days?: string } = {}) {
  const user = c.get('user')!;
  const tokens = await listApiTokens(c.get('deps').db, user.id);
  const now = c.get('deps').now().getTime();
  const state = (t: TokenRow) => t.revoked_at ? `revoked ${when(t.revoked_at)}` : t.expires_at.getTime() <= now ? 'expired' : 'active';
  return html`<section class="card" id="api-tokens">
    <h2>API tokens</h2>
    <p class="muted">For scripts: send <code>Authorization: Bearer &lt;token&gt;</code> to <code>/api/…</code>
      (see <a href="/api/openapi.json">/api/openapi.json</a>). A token acts as you, with your role (${user.role}).</p>
    ${tokens.length ? html`<div class="table-wrap"><table><thead><tr><th>Name</th><th>Token</th><th>Created</th><th>Expires</th><th>Last used</th><th>State</th><th></th></tr></thead><tbody>
      ${tokens.map((t) => html`<tr><td>${t.name}</td><td><code>${t.prefix}…</code></td><td class="nowrap">${when(t.created_at)}</td>
        <td class="nowrap">${when(t.expires_at)}</td><td class="nowrap">${when(t.last_used_at)}</td><td>${state(t)}</td>
        <td>${t.revoked_at ? '' : html`<form method="post" action="/account/tokens/revoke" class="inline">
          <input type="hidden" name="id" value="${t.id}"><button type="submit" class="secondary">Revoke</button></form>`}</td></tr>`)}
    </tbody></table></div>` : html`<p>No tokens yet.</p>`}
    ${formError(o.errors ? 'The token was not created.' : undefined)}
    <form method="post" action="/account/tokens" novalidate>
      ${field({ name: 'name', label: 'Name', value: o.name, error: o.errors?.name, required: true, maxlength: 100, hint: 'e.g. "nightly export"' })}
      ${field({ name: 'days', label: 'Valid for (days)', type: 'number', value: o.days ?? String(DEFAULT_TOKEN_DAYS), error: o.errors?.days, hint: `1 to ${MAX_TOKEN_DAYS}` })}
      <p><button type="submit">Create token</button></p>
    </form>
  </section>`;
}

export const apiTokenRoutes = new Hono<Env>();

apiTokenRoutes.post('/account/tokens', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  let made: NewToken;
  try {
    made = await createApiToken(c.get('deps').db, auditContext(c), user.id, { name: form.name, days: form.days });
  } catch (e) {
    if (!(e instanceof TokenInputError)) throw e;
    c.header('Cache-Control', 'no-store');
    return c.html(page(c, { title: 'API tokens', body: html`<main class="narrow"><h1>API tokens</h1>
      ${apiTokensSection(c, { errors: e.fields, name: form.name, days: form.days })}</main>` }), 400);
  }
  c.header('Cache-Control', 'no-store');
  return c.html(page(c, {
    title: 'New API token',
    body: html`<main class="narrow"><h1>New API token</h1><section class="card">
      <p class="notice" role="status">Copy this token now: it is shown only once (Marquee keeps only its hash).</p>
      <p><code class="token" id="new-token">${made.token}</code></p>
      <p>Valid until ${when(made.expiresAt)}. Example:</p>
      <pre><code>curl -H 'Authorization: Bearer ${made.token}' ${new URL(c.req.url).origin}/api/reports</code></pre>
      <p><a class="button" href="/account#api-tokens">Back to your account</a></p></section></main>`,
  }), 201);
});

apiTokenRoutes.post('/account/tokens/revoke', async (c) => {
  const user = c.get('user')!;
  const form = await formBody(c);
  const id = Number(form.id);
  if (!Number.isSafeInteger(id) || id < 1) throw new HttpError(400, 'Say which token to revoke', { id: 'must be a token id from the list' });
  if (!(await revokeApiToken(c.get('deps').db, auditContext(c), user.id, id))) throw new HttpError(404, `You have no API token ${id}`);
  return c.redirect('/account?done=token_revoked#api-tokens', 303);
});
