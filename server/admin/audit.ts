// audit_log writes: who did what to which record, before/after, when, from where, under which request id. Call it
// with the transaction's Queryable so the audit row commits or rolls back together with the change it records.
import type { Context } from 'hono';
import sql from 'sql-template-tag';
import type { Queryable } from '../db/index.ts';
import type { Env } from '../types.ts';
import { clientIp } from '../auth/client-ip.ts';

export interface AuditEntry {
  action: string;
  targetType?: string;
  targetId?: string | number;
  before?: unknown;
  after?: unknown;
  /** Defaults to the signed-in user. */
  actorId?: number | null;
}

export async function writeAudit(q: Queryable, c: Context<Env>, e: AuditEntry): Promise<void> {
  const actor = e.actorId !== undefined ? e.actorId : c.get('user')?.id ?? null;
  const json = (v: unknown) => v === undefined ? null : JSON.stringify(v);
  await q.query(sql`INSERT INTO audit_log (at, actor_id, action, target_type, target_id, before, after, ip, request_id)
    VALUES (${c.get('deps').now()}, ${actor}, ${e.action}, ${e.targetType ?? null},
            ${e.targetId === undefined ? null : String(e.targetId)}, ${json(e.before)}::jsonb, ${json(e.after)}::jsonb,
            ${clientIp(c)}::inet, ${c.get('requestId')})`);
}
