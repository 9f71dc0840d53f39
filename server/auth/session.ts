// Sessions live in PostgreSQL: the cookie carries 256 random bits, the table only their SHA-256, so a database leak
// does not leak live sessions. Idle timeout 30 min (sliding), absolute timeout 12 h from sign-in; both measured with
// deps.now() so tests can move the clock. A session ends on logout, "sign out everywhere", and whenever the user's
// password, role or status changes (endAllSessions, called in the same transaction as the change).
import type { Context, MiddlewareHandler } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { createHash, randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import { noteLocalChange, readThrough, type ChangeCache, type Db, type Queryable } from '../db/index.ts';
import type { Env, SessionUser } from '../types.ts';
import { clientIp } from './client-ip.ts';
import { HttpError, isApi } from '../errors.ts';

/** A session's absolute lifetime when the caller has no configuration (tools, tests): MARQUEE_SESSION_MAX_HOURS' default. */
const DEFAULT_SESSION_MAX_MS = 12 * 3_600_000;
/** last_seen_at is written at most this often: one UPDATE per minute per session, not per request. */
const TOUCH_EVERY_MS = 60_000;

export const sessionCookieName = (secure: boolean | undefined) => secure ? '__Host-mq_session' : 'mq_session';

export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export interface NewSession { token: string; idHash: Buffer; expiresAt: Date }

/** Inserts a session for the user and returns the cookie value (never stored). */
export async function createSession(q: Queryable, userId: number, now: Date,
  meta: { ip?: string | null; userAgent?: string | null; maxMs?: number } = {}): Promise<NewSession> {
  const token = randomBytes(32).toString('base64url');
  const idHash = hashToken(token);
  const expiresAt = new Date(now.getTime() + (meta.maxMs ?? DEFAULT_SESSION_MAX_MS));
  await q.query(sql`INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent)
    VALUES (${idHash}, ${userId}, ${now}, ${now}, ${expiresAt}, ${meta.ip ?? null}, ${meta.userAgent?.slice(0, 400) ?? null})`);
  return { token, idHash, expiresAt };
}

export async function endSession(q: Queryable, idHash: Buffer) {
  await q.query(sql`DELETE FROM sessions WHERE id_hash = ${idHash}`);
  noteLocalChange('sessions');
}

/** Ends every session of a user (password, role or status change; "sign out everywhere"). Returns how many. */
export async function endAllSessions(q: Queryable, userId: number): Promise<number> {
  const rows = await q.query(sql`DELETE FROM sessions WHERE user_id = ${userId} RETURNING 1`);
  noteLocalChange('sessions');
  return rows.length;
}

export function setSessionCookie(c: Context<Env>, token: string) {
  const { secureCookies: secure, sessionMaxMs } = c.get('deps').config;
  setCookie(c, sessionCookieName(secure), token, {
    path: '/', httpOnly: true, sameSite: 'Lax', secure, maxAge: Math.floor(sessionMaxMs / 1000),
  });
}

export function clearSessionCookie(c: Context<Env>) {
  const secure = !!c.get('deps').config.secureCookies;
  deleteCookie(c, sessionCookieName(secure), { path: '/', httpOnly: true, sameSite: 'Lax', secure });
}

/**
 * Starts a fresh session for the user on this response, ending the request's current one (if any): the id changes on
 * every sign-in and privilege change, so a session id planted before sign-in is worthless afterwards.
 */
export async function rotateSession(c: Context<Env>, q: Queryable, userId: number): Promise<NewSession> {
  const old = c.get('sessionIdHash');
  if (old) await endSession(q, old);
  const { now, config } = c.get('deps');
  const s = await createSession(q, userId, now(), { ip: clientIp(c), userAgent: c.req.header('user-agent'), maxMs: config.sessionMaxMs });
  c.set('sessionIdHash', s.idHash);
  setSessionCookie(c, s.token);
  return s;
}

const NO_SESSION = /^\/(?:static\/|healthz$|readyz$)/;

/** Paths a user who must change their password may still reach. */
const DURING_FORCED_CHANGE = [/^\/account\/password$/, /^\/logout$/, /^\/static\//, /^\/healthz$/, /^\/readyz$/];

interface SessionRow {
  id: number; email: string; display_name: string; role: SessionUser['role']; must_change_password: boolean;
  status: string; last_seen_at: Date; expires_at: Date;
}

// Recent lookups (deps.caches.sessions), so a signed-in request needs no query: an entry serves only while nothing
// changed sessions or users since it was read (db.changes: logout, sign-out everywhere, a role, status or password
// change, in any process), and only while it needs no write — a session due for its last_seen_at touch, or expired,
// is read from the table again.
function lookupSession(db: Db, cache: ChangeCache<SessionRow | undefined>, idHash: Buffer, now: Date): Promise<SessionRow | undefined> {
  return readThrough(db, cache, idHash.toString('base64'), ['sessions', 'users'],
    () => db.one<SessionRow>(sql`SELECT u.id, u.email, u.display_name, u.role, u.must_change_password, u.status,
        s.last_seen_at, s.expires_at
      FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ${idHash}`),
    { usable: (row) => !!row && now.getTime() - row.last_seen_at.getTime() < TOUCH_EVERY_MS && row.expires_at.getTime() > now.getTime() });
}

/** Sets c.get('user') and c.get('sessionIdHash') from the session cookie; runs before `authorize`. */
export const sessionMiddleware: MiddlewareHandler<Env> = async (c, next) => {
  // Static files and probes are public and never render a page: no session lookup (no query) for them.
  if (NO_SESSION.test(c.req.path)) return next();
  const deps = c.get('deps');
  const name = sessionCookieName(deps.config.secureCookies);
  const token = getCookie(c, name);
  if (token && token.length <= 100) {
    const idHash = hashToken(token);
    const now = deps.now();
    const row = await lookupSession(deps.db, deps.caches.sessions, idHash, now);
    const live = row && row.status === 'active' && row.expires_at.getTime() > now.getTime()
      && now.getTime() - row.last_seen_at.getTime() < deps.config.sessionIdleMs;
    if (row && live) {
      c.set('user', { id: row.id, email: row.email, displayName: row.display_name, role: row.role,
        mustChangePassword: row.must_change_password });
      c.set('sessionIdHash', idHash);
      if (now.getTime() - row.last_seen_at.getTime() >= TOUCH_EVERY_MS) {
        await deps.db.query(sql`UPDATE sessions SET last_seen_at = ${now} WHERE id_hash = ${idHash} AND last_seen_at < ${now}`);
      }
    } else {
      if (row) await endSession(deps.db, idHash);
      clearSessionCookie(c);
    }
  } else if (token) {
    clearSessionCookie(c);
  }

  const user = c.get('user');
  if (user?.mustChangePassword && !DURING_FORCED_CHANGE.some((re) => re.test(c.req.path))) {
    if (c.req.method === 'GET' && !isApi(c.req.path)) {
      const url = new URL(c.req.url);
      return c.redirect(`/account/password?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
    }
    throw new HttpError(403, 'Change your password first, at /account/password');
  }
  await next();
};
