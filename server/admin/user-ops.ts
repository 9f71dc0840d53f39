// User administration as operations shared by the admin pages and the operator CLI. Each runs in one transaction
// with its audit_log row; role, status and password changes end the user's sessions in that same transaction; the
// last active admin can never be demoted or disabled (checked under row locks, so two admins acting at once cannot
// both succeed in removing each other).
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../db/index.ts';
import { ROLES, type Role } from '../auth/roles.ts';
import { hashPassword, passwordProblem } from '../auth/password.ts';
import { endAllSessions } from '../auth/session.ts';
import { accountProblems, isUniqueViolation } from '../auth/signup.ts';
import { writeAudit, type AuditContext } from './audit.ts';

const ADMIN_SET_LOCK = 7_201_100_051; // "marquee: who is an active admin"

export const STATUSES = ['active', 'disabled'] as const;
export type Status = (typeof STATUSES)[number];

/** A refused operation: the message names the field (for forms) and is safe to show. */
export class UserOpError extends Error {
  constructor(message: string, public field?: string, public status: 400 | 404 | 409 = 400) { super(message); }
}

export interface UserRow {
  id: number; email: string; display_name: string; role: Role; status: Status; must_change_password: boolean;
  created_at: Date; last_login_at: Date | null; simulated: boolean; password_hash?: string | null;
}

/** 16 characters from a 96-bit random value: typed once, then replaced by the user. */
export const temporaryPassword = () => randomBytes(12).toString('base64url');

async function lockUser(q: Queryable, id: number): Promise<UserRow> {
  const u = await q.one<UserRow>(sql`SELECT id, email, display_name, role, status, must_change_password, created_at,
    last_login_at, simulated FROM users WHERE id = ${id} FOR UPDATE`);
  if (!u) throw new UserOpError(`There is no user ${id}`, undefined, 404);
  return u;
}

async function guardLastAdmin(q: Queryable, u: UserRow, next: { role: Role; status: Status }, field: string) {
  if (u.role !== 'admin' || u.status !== 'active') return;
  if (next.role === 'admin' && next.status === 'active') return;
  // Lock every active admin row: a concurrent demotion waits here and then sees this one's outcome.
  const admins = await q.query(sql`SELECT id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id FOR UPDATE`);
  if (!admins.some((a) => a.id !== u.id)) {
    throw new UserOpError(`${u.email} is the last active admin: make another user an admin first`, field, 409);
  }
}

export interface CreateInput { email: string; displayName: string; role: Role; password?: string }

/** Creates a user; without a password a temporary one is generated (returned once) and must be changed at sign-in. */
export async function createAccount(db: Db, ctx: AuditContext, input: CreateInput): Promise<{ id: number; temporaryPassword?: string }> {
  const email = input.email.trim(), displayName = input.displayName.trim();
  const problems = accountProblems({ email, display_name: displayName });
  if (!ROLES.includes(input.role)) problems.role = `Choose one of ${ROLES.join(', ')}`;
  if (input.password !== undefined) {
    const p = passwordProblem(input.password, email);
    if (p) problems.password = p;
  }
  const [field, message] = Object.entries(problems)[0] ?? [];
  if (field) throw new UserOpError(message, field);
  const temp = input.password === undefined ? temporaryPassword() : undefined;
  const hash = await hashPassword(input.password ?? temp!);
  try {
    const id = await db.tx(async (q) => {
      const row = await q.one<{ id: number }>(sql`INSERT INTO users (email, display_name, role, password_hash, must_change_password, created_at)
        VALUES (${email}, ${displayName}, ${input.role}, ${hash}, ${temp !== undefined}, ${ctx.now}) RETURNING id`);
      await writeAudit(q, ctx, { action: 'user.create', targetType: 'user', targetId: row!.id,
        after: { email, display_name: displayName, role: input.role, status: 'active', temporary_password: temp !== undefined } });
      return row!.id;
    });
    return { id, temporaryPassword: temp };
  } catch (e) {
    if (isUniqueViolation(e)) throw new UserOpError('A user with this email already exists', 'email', 409);
    throw e;
  }
}

export interface UpdateInput { displayName?: string; role?: Role; status?: Status }

/** Edits name/role/status; a role or status change ends all of the user's sessions. */
export async function updateAccount(db: Db, ctx: AuditContext, id: number, input: UpdateInput) {
  const displayName = input.displayName?.trim();
  if (displayName !== undefined) {
    const p = accountProblems({ display_name: displayName });
    if (p.display_name) throw new UserOpError(p.display_name, 'display_name');
  }
  if (input.role !== undefined && !ROLES.includes(input.role)) throw new UserOpError(`Choose one of ${ROLES.join(', ')}`, 'role');
  if (input.status !== undefined && !STATUSES.includes(input.status)) throw new UserOpError('Choose active or disabled', 'status');
  return db.tx(async (q) => {
    // Role/status changes take one lock first, so two of them never hold user rows in opposite orders (deadlock)
    // and the last-admin count below sees every earlier change.
    if (input.role !== undefined || input.status !== undefined) await q.query(sql`SELECT pg_advisory_xact_lock(${ADMIN_SET_LOCK})`);
    const u = await lockUser(q, id);
    const next = { display_name: displayName ?? u.display_name, role: input.role ?? u.role, status: input.status ?? u.status };
    const before: Record<string, unknown> = {}, after: Record<string, unknown> = {};
    for (const k of ['display_name', 'role', 'status'] as const) if (next[k] !== u[k]) { before[k] = u[k]; after[k] = next[k]; }
    if (!Object.keys(after).length) return { changed: [] as string[], sessionsEnded: 0, user: u };
    await guardLastAdmin(q, u, next, next.role !== u.role ? 'role' : 'status');
    await q.query(sql`UPDATE users SET display_name = ${next.display_name}, role = ${next.role}, status = ${next.status} WHERE id = ${id}`);
    const privilege = 'role' in after || 'status' in after;
    const sessionsEnded = privilege ? await endAllSessions(q, id) : 0;
    if (after.status === 'disabled') await q.query(sql`DELETE FROM known_devices WHERE user_id = ${id}`);
    const action = Object.keys(after).length === 1 && 'status' in after ? (after.status === 'disabled' ? 'user.disable' : 'user.enable')
      : Object.keys(after).length === 1 && 'role' in after ? 'user.role_change' : 'user.update';
    await writeAudit(q, ctx, { action, targetType: 'user', targetId: id, before, after: privilege ? { ...after, sessions_ended: sessionsEnded } : after });
    return { changed: Object.keys(after), sessionsEnded, user: { ...u, ...next } };
  });
}

export const setStatus = (db: Db, ctx: AuditContext, id: number, status: Status) => updateAccount(db, ctx, id, { status });

/** Sets a new password (given, or a generated temporary one that must be changed at next sign-in); ends all sessions. */
export async function resetPassword(db: Db, ctx: AuditContext, id: number, password?: string) {
  const temp = password === undefined ? temporaryPassword() : undefined;
  const hash = await hashPassword(password ?? temp!);
  return db.tx(async (q) => {
    const u = await lockUser(q, id);
    if (password !== undefined) {
      const p = passwordProblem(password, u.email);
      if (p) throw new UserOpError(p, 'password');
    }
    await q.query(sql`UPDATE users SET password_hash = ${hash}, must_change_password = ${temp !== undefined} WHERE id = ${id}`);
    const sessionsEnded = await endAllSessions(q, id);
    await q.query(sql`DELETE FROM known_devices WHERE user_id = ${id}`);
    await writeAudit(q, ctx, { action: 'user.password_reset', targetType: 'user', targetId: id,
      after: { must_change_password: temp !== undefined, sessions_ended: sessionsEnded } });
    return { temporaryPassword: temp, user: u, sessionsEnded };
  });
}

/** Ends every session of the user (an admin's "sign out everywhere" on their behalf). */
export async function signOutUser(db: Db, ctx: AuditContext, id: number) {
  return db.tx(async (q) => {
    await lockUser(q, id);
    const sessionsEnded = await endAllSessions(q, id);
    await writeAudit(q, ctx, { action: 'user.sign_out', targetType: 'user', targetId: id, after: { sessions_ended: sessionsEnded } });
    return sessionsEnded;
  });
}

export async function findUserByEmail(q: Queryable, email: string): Promise<UserRow | undefined> {
  return q.one<UserRow>(sql`SELECT id, email, display_name, role, status, must_change_password, created_at, last_login_at,
    simulated FROM users WHERE lower(email) = lower(${email.trim()})`);
}
