// audit_log writes: who did what to which record, before/after, when, from where, under which request id. Call it
// with the transaction's Queryable so the audit row commits or rolls back together with the change it records.
import type { Context } from 'hono';
import sql from 'sql-template-tag';
import type { Queryable } from '../db/index.ts';
import type { Env } from '../types.ts';
import { clientIp } from '../auth/client-ip.ts';

/** Who acts, from where, when: taken from a request (auditContext(c)) or built by the CLI. */
export interface AuditContext { actorId: number | null; ip: string | null; requestId: string | null; now: Date;
  /** A well-formed X-Request-Id the client sent, stored beside our requestId (never instead of it). */
  clientRequestId?: string | null }

export function auditContext(c: Context<Env>): AuditContext {
  return { actorId: c.get('user')?.id ?? null, ip: clientIp(c), requestId: c.get('requestId'),
    clientRequestId: c.get('clientRequestId') ?? null, now: c.get('deps').now() };
}

export interface AuditEntry {
  action: string;
  targetType?: string;
  targetId?: string | number;
  before?: unknown;
  after?: unknown;
  /** Overrides the context's actor (e.g. the new user on signup). */
  actorId?: number | null;
}

export async function writeAudit(q: Queryable, ctx: Context<Env> | AuditContext, e: AuditEntry): Promise<void> {
  const a = 'req' in ctx ? auditContext(ctx) : ctx;
  const actor = e.actorId !== undefined ? e.actorId : a.actorId;
  const json = (v: unknown) => v === undefined ? null : JSON.stringify(v);
  await q.query(sql`INSERT INTO audit_log (at, actor_id, action, target_type, target_id, before, after, ip, request_id, client_request_id)
    VALUES (${a.now}, ${actor}, ${e.action}, ${e.targetType ?? null},
            ${e.targetId === undefined ? null : String(e.targetId)}, ${json(e.before)}::jsonb, ${json(e.after)}::jsonb,
            ${a.ip}::inet, ${a.requestId}, ${a.clientRequestId ?? null})`);
}
