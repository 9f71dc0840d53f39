// Accounts for tests: create users of any role, sign in through the real POST /login, and send authenticated
// requests that pass the CSRF guard (same Origin on state-changing methods).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sql from 'sql-template-tag';
import type { Db } from '../../server/db/index.ts';
import type { Role } from '../../server/auth/access.ts';
import { hashPassword } from '../../server/auth/password.ts';
import { createSession, sessionCookieName } from '../../server/auth/session.ts';

/** app.request() URLs resolve against http://localhost, so that is the app's own origin in tests. */
export const TEST_ORIGIN = 'http://localhost';

type Requester = { request: (input: string, init?: RequestInit, env?: any) => Response | Promise<Response> };

export interface TestUser { id: number; email: string; password: string; role: Role; name: string }

export async function createUser(db: Db, o: { role: Role; email?: string; password?: string; name?: string;
  mustChangePassword?: boolean; status?: 'active' | 'disabled' }): Promise<TestUser> {
  const tag = randomBytes(4).toString('hex');
  const email = o.email ?? `${o.role}-${tag}@test.example`;
  const password = o.password ?? `pw-${randomBytes(9).toString('base64url')}`;
  const name = o.name ?? `${o.role[0].toUpperCase()}${o.role.slice(1)} ${tag}`;
  const row = await db.one<{ id: number }>(sql`INSERT INTO users (email, display_name, role, status, password_hash, must_change_password)
    VALUES (${email}, ${name}, ${o.role}, ${o.status ?? 'active'}, ${await hashPassword(password)}, ${o.mustChangePassword ?? false})
    RETURNING id`);
  return { id: row!.id, email, password, role: o.role, name };
}

/** The `name=value` of the session cookie in a response's Set-Cookie headers ('' when it was cleared or absent). */
export function sessionCookieFrom(res: Response): string {
  for (const line of res.headers.getSetCookie()) {
    const m = /^((?:__Host-)?mq_session)=([^;]*)/.exec(line);
    if (m && m[2]) return `${m[1]}=${m[2]}`;
  }
  return '';
}

/** Signs in through POST /login (a same-origin form post) and returns the Cookie header value for the new session. */
export async function loginAs(app: Requester, email: string, password: string, env?: any): Promise<string> {
  const res = await app.request('/login', {
    method: 'POST',
    headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ email, password }).toString(),
  }, env);
  const cookie = sessionCookieFrom(res);
  if (res.status !== 303 || !cookie) throw new Error(`login as ${email} failed: ${res.status} ${(await res.text()).slice(0, 300)}`);
  return cookie;
}

/** A session straight in the database (no argon2, no HTTP): for tests that need many sessions, e.g. the role matrix. */
export async function sessionCookie(db: Db, userId: number, opts: { now?: Date; secure?: boolean } = {}): Promise<string> {
  const s = await createSession(db, userId, opts.now ?? new Date());
  return `${sessionCookieName(opts.secure)}=${s.token}`;
}

/**
 * app.request with the session cookie; state-changing methods get the app's own Origin (override in init.headers).
 * A plain-object or URLSearchParams body is sent as a form post.
 */
export function authedRequest(app: Requester, cookie: string, path: string,
  init: Omit<RequestInit, 'body'> & { body?: BodyInit | Record<string, string> | null } = {}, env?: any) {
  const headers = new Headers(init.headers);
  if (cookie) headers.set('Cookie', cookie);
  const method = (init.method ?? 'GET').toUpperCase();
  if (!/^(GET|HEAD|OPTIONS)$/.test(method) && !headers.has('Origin')) headers.set('Origin', TEST_ORIGIN);
  let body = init.body as BodyInit | null | undefined;
  if (body && typeof body === 'object' && !(body instanceof URLSearchParams) && !(body instanceof FormData)
    && !(body instanceof Blob) && !(body instanceof ArrayBuffer) && !ArrayBuffer.isView(body) && !(body instanceof ReadableStream)) {
    body = new URLSearchParams(body as Record<string, string>);
  }
  if (body instanceof URLSearchParams) {
    if (!headers.has('Content-Type')) headers.set('Content-Type', 'application/x-www-form-urlencoded');
    body = body.toString();
  }
  return Promise.resolve(app.request(path, { ...init, method, headers, body }, env));
}

/**
 * A temporary outbox for createApp({ outboxDir }) in tests that sign up: sign-up mails a confirmation link
 * (server/mail/outbox.ts). `confirmPath(email)` is the path of the newest link sent to that address.
 */
export function testOutbox() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-outbox-'));
  const mailTo = (email: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.eml')).sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).filter((text) => text.includes(`To: <${email}>`));
  return {
    dir,
    mailTo,
    confirmPath(email: string): string {
      const m = /\/signup\/confirm\?token=([\w-]{43})/.exec(mailTo(email).at(-1) ?? '');
      if (!m) throw new Error(`no confirmation link was mailed to ${email}`);
      return m[0];
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
