// Scheduled digests: a manager or admin subscribes to a dashboard or report path weekly or monthly; the digests job
// (server/jobs/registry.ts, every minute) makes one delivery row per subscription and period — ISO week or calendar
// month, UTC — and sends each due row: the snapshot (server/sharing/snapshot.ts) rendered as the subscriber's role,
// mailed through MARQUEE_SMTP_URL (nodemailer) or written to the outbox. Exactly once across instances: the job's tick
// is claimed once in job_runs, the (subscription, period) row is unique, and a row is sent inside a transaction that
// holds it FOR UPDATE SKIP LOCKED — a second sender skips it, and a crash mid-send rolls back to pending (sent again:
// at-least-once across crashes, as every job). A failed send is retried with backoff; an access problem (the
// subscriber's role no longer sees the page, the page is gone) fails at once. README, "Sharing: snapshots and digests".
import sql from 'sql-template-tag';
import nodemailer from 'nodemailer';
import type { Db, Queryable } from '../db/index.ts';
import type { AppDeps } from '../types.ts';
import type { Job } from '../jobs/index.ts';
import { loadDashboards } from '../dashboards/catalog.ts';
import type { Config } from '../config.ts';
import type { Role } from '../auth/access.ts';
import { HttpError } from '../errors.ts';
import { FROM, writeMessage } from '../mail/outbox.ts';
import { writeAudit, type AuditContext } from '../admin/audit.ts';
import { parseTarget, renderSnapshot, type SnapshotDeps, type Snapshot } from './snapshot.ts';

export const FREQUENCIES = ['weekly', 'monthly'] as const;
export type Frequency = typeof FREQUENCIES[number];
/** Attempts before a delivery is given up (status failed). */
export const MAX_ATTEMPTS = 6;
/** Wait before attempt n + 1 after n failures: 1, 2, 4, 8, 16 minutes … capped at 6 hours. */
export const backoffMs = (failures: number) => Math.min(60_000 * 2 ** Math.max(0, failures - 1), 6 * 3_600_000);

/** The period a digest sent at `now` covers: ISO week (2026-W49) or month (2026-12), UTC. */
export function periodOf(frequency: Frequency, now: Date): string {
  if (frequency === 'monthly') return now.toISOString().slice(0, 7);
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day); // the Thursday of this ISO week names its year
  const week = Math.ceil(((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

export interface Subscription { id: number; path: string; title: string; frequency: Frequency; created_at: Date;
  last_period: string | null; last_status: string | null; last_sent_at: Date | null; last_error: string | null }

export async function listSubscriptions(db: Queryable, userId: number): Promise<Subscription[]> {
  return db.query<Subscription>(sql`SELECT s.id::int, s.path, s.title, s.frequency, s.created_at,
      d.period AS last_period, d.status AS last_status, d.sent_at AS last_sent_at, d.last_error
    FROM digest_subscriptions s
    LEFT JOIN LATERAL (SELECT * FROM digest_deliveries WHERE subscription_id = s.id ORDER BY id DESC LIMIT 1) d ON true
    WHERE s.user_id = ${userId} AND s.cancelled_at IS NULL ORDER BY s.created_at, s.id`);
}

/**
 * Subscribes a user to a path: the path must render for their role now (same checks as the snapshot, so a 400, 403
 * or 404 names the problem); subscribing twice to the same path and frequency keeps the one subscription. Audited.
 */
export async function subscribe(db: Db, deps: SnapshotDeps, user: { id: number; role: Role }, input: { path?: string; frequency?: string }, audit: AuditContext) {
  const fields: Record<string, string> = {};
  if (!input.path) fields.path = 'choose a dashboard or report';
  if (!FREQUENCIES.includes(input.frequency as Frequency)) fields.frequency = `must be ${FREQUENCIES.join(' or ')}`;
  if (Object.keys(fields).length) throw new HttpError(400, Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('; '), fields);
  parseTarget(input.path!);
  const snap = await renderSnapshot(deps, user.role, input.path!);
  return db.tx(async (q) => {
    const row = await q.one<{ id: number }>(sql`INSERT INTO digest_subscriptions (user_id, path, title, frequency)
      VALUES (${user.id}, ${snap.path}, ${snap.title}, ${input.frequency})
      ON CONFLICT (user_id, path, frequency) WHERE cancelled_at IS NULL DO UPDATE SET title = EXCLUDED.title RETURNING id::int`);
    await writeAudit(q, audit, { action: 'digest.subscribe', targetType: 'digest_subscription', targetId: row!.id, after: { path: snap.path, frequency: input.frequency } });
    return { id: row!.id, path: snap.path, title: snap.title };
  });
}

/** Ends one of the user's subscriptions (audited); false when it is not theirs or already ended. */
export async function unsubscribe(db: Db, userId: number, id: number, audit: AuditContext): Promise<boolean> {
  return db.tx(async (q) => {
    const r = await q.one<{ path: string; frequency: string }>(sql`UPDATE digest_subscriptions SET cancelled_at = ${audit.now}
      WHERE id = ${id} AND user_id = ${userId} AND cancelled_at IS NULL RETURNING path, frequency`);
    if (r) await writeAudit(q, audit, { action: 'digest.unsubscribe', targetType: 'digest_subscription', targetId: id, before: { path: r.path, frequency: r.frequency } });
    return !!r;
  });
}

export interface Outgoing { to: string; subject: string; text: string; snapshot: Snapshot }

/** Sends one digest: SMTP when configured, else an .eml file in the outbox (nodemailer composes both). */
export async function deliverMail(config: Pick<Config, 'smtpUrl' | 'outboxDir'>, m: Outgoing, now: Date): Promise<{ transport: 'smtp' | 'outbox'; messageId: string }> {
  const message = {
    from: FROM, to: m.to, subject: m.subject, text: m.text, date: now,
    attachments: [{ filename: m.snapshot.filename, content: m.snapshot.html, contentType: 'text/html; charset=utf-8' }],
  };
  if (config.smtpUrl) {
    // bounded waits: a stalled relay fails this attempt (retried later) instead of holding the job for minutes
    const transport = nodemailer.createTransport({ url: config.smtpUrl, connectionTimeout: 15_000, greetingTimeout: 15_000, socketTimeout: 60_000 });
    try {
      const info = await transport.sendMail(message);
      if (info.rejected?.length) throw new Error(`the SMTP server refused ${info.rejected.join(', ')}`);
      return { transport: 'smtp', messageId: info.messageId };
    } finally {
      transport.close();
    }
  }
  const info = await nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'windows' }).sendMail(message);
  await writeMessage(config.outboxDir, info.message as Buffer, now);
  return { transport: 'outbox', messageId: info.messageId };
}

export interface DigestDeps extends SnapshotDeps { config: Pick<Config, 'smtpUrl' | 'outboxDir' | 'publicUrls'> }

/**
 * One run of the digests job at `now`: opens this period's delivery of every live subscription of an active user, then
 * sends the due ones, each in its own transaction. Returns what it did (the job's result).
 */
export async function runDigests(db: Db, deps: DigestDeps, now: Date, log: (l: string) => void = () => {}) {
  const opened = await db.query(sql`INSERT INTO digest_deliveries (subscription_id, period, next_attempt_at)
    SELECT s.id, CASE s.frequency WHEN 'weekly' THEN ${periodOf('weekly', now)} ELSE ${periodOf('monthly', now)} END, ${now}
    FROM digest_subscriptions s JOIN users u ON u.id = s.user_id
    WHERE s.cancelled_at IS NULL AND u.status = 'active'
    ON CONFLICT (subscription_id, period) DO NOTHING RETURNING id`);
  let sent = 0, failed = 0;
  for (let i = 0; i < 200; i++) {
    const outcome = await db.tx(async (q) => {
      const d = await q.one<{ id: number; period: string; attempts: number; path: string; frequency: Frequency; email: string; role: Role }>(sql`
        SELECT d.id::int, d.period, d.attempts, s.path, s.frequency, u.email, u.role
        FROM digest_deliveries d JOIN digest_subscriptions s ON s.id = d.subscription_id JOIN users u ON u.id = s.user_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= ${now}
        ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED`);
      if (!d) return 'none' as const;
      try {
        const snapshot = await renderSnapshot({ ...deps, now: () => now }, d.role, d.path);
        const base = deps.config.publicUrls?.[0];
        const out = await deliverMail(deps.config, {
          to: d.email,
          subject: `${snapshot.title}: ${d.frequency} digest ${d.period}`,
          text: [`${snapshot.title}, ${d.frequency} digest for ${d.period}.`, `Data as of ${snapshot.asOf}.`,
            `The snapshot is attached (one HTML file, no script needed to read or print it).`,
            `Live page: ${base ?? ''}${snapshot.path}`, '', `Unsubscribe: ${base ?? ''}/digests`].join('\n'),
          snapshot,
        }, now);
        await q.query(sql`UPDATE digest_deliveries SET status = 'sent', attempts = attempts + 1, sent_at = ${now},
          transport = ${out.transport}, message_id = ${out.messageId}, last_error = NULL WHERE id = ${d.id}`);
        log(`[digests] ${d.path} (${d.frequency} ${d.period}) sent to ${d.email} by ${out.transport}`);
        return 'sent' as const;
      } catch (e: any) {
        const attempts = d.attempts + 1;
        // the subscriber may no longer see the page, or it is gone: no retry helps
        const permanent = e instanceof HttpError && e.status >= 400 && e.status < 500;
        const giveUp = permanent || attempts >= MAX_ATTEMPTS;
        const error = String(e?.message ?? e).slice(0, 2000);
        await q.query(sql`UPDATE digest_deliveries SET attempts = ${attempts}, last_error = ${error},
          status = ${giveUp ? 'failed' : 'pending'}, next_attempt_at = ${new Date(now.getTime() + backoffMs(attempts))} WHERE id = ${d.id}`);
        log(`[digests] ${d.path} (${d.frequency} ${d.period}) to ${d.email}: attempt ${attempts} failed: ${error}${giveUp ? ' (given up)' : ''}`);
        return 'failed' as const;
      }
    });
    if (outcome === 'none') break;
    if (outcome === 'sent') sent++; else failed++;
  }
  return { opened: opened.length, sent, failed };
}

/** The digests job: every minute, on whichever instance claims the tick. */
export function digestJob(deps: Pick<AppDeps, 'catalog' | 'log' | 'config'> & { dashboards?: AppDeps['dashboards'] }): Job {
  let dashboards = deps.dashboards;
  return {
    name: 'digests.send',
    schedule: '* * * * *',
    // the period is the tick's: the instant the schedule fired, whichever instance runs it and however late
    run: (db, now, tick) => {
      const at = tick?.scheduledAt ?? now;
      dashboards ??= loadDashboards(deps.config.dashboardsDir, deps.catalog);
      return runDigests(db, { catalog: deps.catalog, dashboards, readDb: db, caches: { reports: null }, now: () => at, config: deps.config }, at, deps.log);
    },
  };
}
