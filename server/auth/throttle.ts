// Sign-in throttling with growing delays, per account, per client IP, and per known device:
// - account (attempts from browsers not known for it): 5 free failures per hour, then each further attempt waits
//   1 s, 2 s, 4 s … up to 60 s after the previous failure; at most 100 failures per hour per account;
// - client IP: 20 free failures per hour (any accounts), then 1 s, 2 s … up to 15 min;
// - a browser that signed in to the account before (a known-device cookie) is throttled on its own counter instead
//   (5 free, growing to 60 s, 100 per hour), so an attacker failing against an account cannot keep its owner out.
// Blocked attempts answer 429 + Retry-After and are not counted, so they never extend a block. Each attempt is
// recorded (under an advisory lock on its account and IP) before the password is checked: parallel guesses count.
import type { Context } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import type { Env } from '../types.ts';
import { hashToken } from './session.ts';
import { keyedQueue } from '../db/keyed-queue.ts';

export const THROTTLE = {
  windowMs: 3_600_000,
  account: { free: 5, maxDelayMs: 60_000, cap: 100 },
  ip: { free: 20, maxDelayMs: 15 * 60_000, cap: Infinity },
  device: { free: 5, maxDelayMs: 60_000, cap: 100 },
} as const;

const DEVICE_LIFETIME_MS = 180 * 86_400_000;
const LOCK_NAMESPACE = 720_110_005; // int4 key space of pg_advisory_xact_lock(int, int): "marquee login throttle"

type Rule = { free: number; maxDelayMs: number; cap: number };
interface Counter { n: number; last: Date | null; capFrom: Date | null }

/** Earliest time the next attempt is allowed by one counter (growing delay since the last failure, and the cap). */
export function allowedAt(rule: Rule, c: Counter, windowMs = THROTTLE.windowMs): number {
  let t = 0;
  if (c.n >= rule.free && c.last) t = c.last.getTime() + Math.min(1000 * 2 ** (c.n - rule.free), rule.maxDelayMs);
  if (c.n >= rule.cap && c.capFrom) t = Math.max(t, c.capFrom.getTime() + windowMs);
  return t;
}

async function count(q: Queryable, where: ReturnType<typeof sql>, since: Date, cap: number): Promise<Counter> {
  const row = await q.one<{ n: number; last: Date | null }>(sql`SELECT count(*) AS n, max(at) AS last FROM login_attempts
    WHERE ${where} AND succeeded IS NOT TRUE AND at > ${since}`);
  let capFrom: Date | null = null;
  if (Number.isFinite(cap) && row!.n >= cap) {
    // The cap-th most recent failure: the block lifts when it leaves the window.
    capFrom = (await q.one<{ at: Date }>(sql`SELECT at FROM login_attempts WHERE ${where} AND succeeded IS NOT TRUE
      AND at > ${since} ORDER BY at DESC OFFSET ${cap - 1} LIMIT 1`))?.at ?? null;
  }
  return { n: row!.n, last: row!.last, capFrom };
}

export type Gate = { ok: true; attemptId: number; knownDevice: boolean } | { ok: false; retryAfterS: number };

// attempts on one account wait their turn in this process before taking a connection (db/keyed-queue.ts)
const accountTurn = keyedQueue();

export async function beginAttempt(db: Db, a: { account: string; ip: string | null; deviceHash: Buffer | null; now: Date }): Promise<Gate> {
  const account = a.account.trim().toLowerCase();
  const since = new Date(a.now.getTime() - THROTTLE.windowMs);
  return accountTurn(account, () => db.tx(async (q) => {
    await q.query(sql`SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}::int4, hashtext(${'account:' + account}))`);
    if (a.ip) await q.query(sql`SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}::int4, hashtext(${'ip:' + a.ip}))`);
    // A device cookie counts only for the account it was issued to (and while it is valid).
    const device = a.deviceHash ? (await q.one<{ token_hash: Buffer }>(sql`SELECT kd.token_hash FROM known_devices kd
      JOIN users u ON u.id = kd.user_id WHERE kd.token_hash = ${a.deviceHash} AND lower(u.email) = ${account}
      AND kd.expires_at > ${a.now}`))?.token_hash ?? null : null;
    let until: number;
    if (device) {
      until = allowedAt(THROTTLE.device, await count(q, sql`device_hash = ${device}`, since, THROTTLE.device.cap));
    } else {
      const acct = await count(q, sql`account = ${account} AND device_hash IS NULL`, since, THROTTLE.account.cap);
      until = allowedAt(THROTTLE.account, acct);
      if (a.ip) until = Math.max(until, allowedAt(THROTTLE.ip, await count(q, sql`ip = ${a.ip}::inet AND device_hash IS NULL`, since, THROTTLE.ip.cap)));
    }
    if (until > a.now.getTime()) return { ok: false as const, retryAfterS: Math.max(1, Math.ceil((until - a.now.getTime()) / 1000)) };
    const row = await q.one<{ id: number }>(sql`INSERT INTO login_attempts (at, account, ip, device_hash)
      VALUES (${a.now}, ${account}, ${a.ip}::inet, ${device}) RETURNING id`);
    return { ok: true as const, attemptId: row!.id, knownDevice: !!device };
  }));
}

export async function finishAttempt(q: Queryable, attemptId: number, succeeded: boolean) {
  await q.query(sql`UPDATE login_attempts SET succeeded = ${succeeded} WHERE id = ${attemptId}`);
}

export const deviceCookieName = (secure: boolean | undefined) => secure ? '__Host-mq_device' : 'mq_device';

/** SHA-256 of the known-device cookie sent with the request, if any. */
export function deviceHashFrom(c: Context<Env>): Buffer | null {
  const token = getCookie(c, deviceCookieName(c.get('deps').config.secureCookies));
  return token && token.length <= 100 ? hashToken(token) : null;
}

/** After a successful sign-in: mark this browser as known for the user (refresh the cookie, or issue a new one). */
export async function rememberDevice(c: Context<Env>, q: Queryable, userId: number) {
  const now = c.get('deps').now();
  const expires = new Date(now.getTime() + DEVICE_LIFETIME_MS);
  const current = deviceHashFrom(c);
  if (current) {
    const kept = await q.query(sql`UPDATE known_devices SET last_used_at = ${now}, expires_at = ${expires}
      WHERE token_hash = ${current} AND user_id = ${userId} AND expires_at > ${now} RETURNING 1`);
    if (kept.length) return;
  }
  const token = randomBytes(32).toString('base64url');
  await q.query(sql`INSERT INTO known_devices (token_hash, user_id, created_at, last_used_at, expires_at)
    VALUES (${hashToken(token)}, ${userId}, ${now}, ${now}, ${expires})`);
  const secure = !!c.get('deps').config.secureCookies;
  setCookie(c, deviceCookieName(secure), token, { path: '/', httpOnly: true, sameSite: 'Lax', secure, maxAge: DEVICE_LIFETIME_MS / 1000 });
}

/** Housekeeping for the scheduled sweep: attempts older than a day, expired device cookies. */
export async function sweepThrottle(db: Db, now: Date) {
  await db.query(sql`DELETE FROM login_attempts WHERE at < ${new Date(now.getTime() - 86_400_000)}`);
  await db.query(sql`DELETE FROM known_devices WHERE expires_at < ${now}`);
}
