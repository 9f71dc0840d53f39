// /admin/audit: the audit trail, newest first, filtered by actor, action, target and date range (all in the URL).
import { Hono } from 'hono';
import sql, { join, type Sql } from 'sql-template-tag';
import type { Db } from '../db/index.ts';
import type { Env } from '../types.ts';
import { page, html, type Html } from '../html.ts';
import { field, selectField, formError, type FieldErrors } from '../auth/forms.ts';
import { pager, pageParam, when } from './ui.ts';

export const adminAudit = new Hono<Env>();

export interface AuditFilters { actor?: string; action?: string; target?: string; from?: string; to?: string }

export interface AuditRow {
  id: number; at: Date; actor_id: number | null; actor_email: string | null; action: string; target_type: string | null;
  target_id: string | null; target_email: string | null; before: Record<string, unknown> | null;
  after: Record<string, unknown> | null; ip: string | null; request_id: string | null; client_request_id: string | null;
}

const DATE = /^(\d{4})-\d{2}-\d{2}$/;
// Years 1900-2999, as report parameters (server/reports/params.ts): JavaScript takes year 0 ("0000-01-01") as a date but
// PostgreSQL has no year 0 and answered 500 "date/time field value out of range".
const validDate = (s: string) => {
  const m = DATE.exec(s);
  return !!m && +m[1] >= 1900 && +m[1] <= 2999 && !Number.isNaN(Date.parse(`${s}T00:00:00Z`))
    && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s);
};
const DATE_HINT = 'Use a date like 2026-01-31 (years 1900 to 2999)';

export function auditProblems(f: AuditFilters): FieldErrors {
  const errors: FieldErrors = {};
  if (f.from && !validDate(f.from)) errors.from = DATE_HINT;
  if (f.to && !validDate(f.to)) errors.to = DATE_HINT;
  if (!errors.from && !errors.to && f.from && f.to && f.from > f.to) errors.to = 'The end date is before the start date';
  if (f.action && !/^[a-z][a-z0-9_.]*$/.test(f.action)) errors.action = 'Unknown action';
  return errors;
}

/** A user given as an id or an email (for the actor and target filters). */
function userMatch(column: Sql, value: string, idColumnIsText: boolean): Sql {
  if (/^\d{1,15}$/.test(value)) return idColumnIsText ? sql`${column} = ${value}` : sql`${column} = ${Number(value)}`;
  const ids = sql`(SELECT id FROM users WHERE lower(email) = lower(${value.trim()}))`;
  return idColumnIsText ? sql`${column} IN (SELECT id::text FROM users WHERE lower(email) = lower(${value.trim()}))` : sql`${column} IN ${ids}`;
}

export async function loadAudit(db: Db, f: AuditFilters, pageNo: number, size: number): Promise<{ rows: AuditRow[]; total: number }> {
  const conds: Sql[] = [sql`true`];
  if (f.actor) conds.push(userMatch(sql`a.actor_id`, f.actor, false));
  if (f.action) conds.push(sql`a.action = ${f.action}`);
  if (f.target) conds.push(sql`a.target_type = 'user' AND ${userMatch(sql`a.target_id`, f.target, true)}`);
  if (f.from) conds.push(sql`a.at >= ${f.from}::date`);
  if (f.to) conds.push(sql`a.at < ${f.to}::date + 1`);
  const where = join(conds, ' AND ');
  const [{ n }] = await db.query<{ n: number }>(sql`SELECT count(*) AS n FROM audit_log a WHERE ${where}`);
  const rows = await db.query<AuditRow>(sql`SELECT a.id, a.at, a.actor_id, actor.email AS actor_email, a.action, a.target_type,
      a.target_id, target.email AS target_email, a.before, a.after, host(a.ip) AS ip, a.request_id,
      a.client_request_id
    FROM audit_log a
    LEFT JOIN users actor ON actor.id = a.actor_id
    -- CASE, not AND: PostgreSQL may cast before it checks the pattern, and first start writes the admin's email here.
    LEFT JOIN users target ON a.target_type = 'user'
      AND target.id = CASE WHEN a.target_id ~ '^[0-9]{1,15}$' THEN a.target_id::bigint END
    WHERE ${where}
    ORDER BY a.at DESC, a.id DESC LIMIT ${size} OFFSET ${(pageNo - 1) * size}`);
  return { rows, total: n };
}

const show = (v: unknown) => v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v);

/** before → after, one line per key that appears in either. */
function changes(before: Record<string, unknown> | null, after: Record<string, unknown> | null): Html {
  const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])];
  if (!keys.length) return html`<span class="muted">—</span>`;
  return html`<ul class="changes">${keys.map((k) => html`<li><b>${k}</b>: ${before && k in before ? html`<del>${show(before[k])}</del> → ` : ''}${after && k in after ? show(after[k]) : '—'}</li>`)}</ul>`;
}

export function auditTable(rows: AuditRow[]): Html {
  if (!rows.length) return html`<p class="muted">No audit entries.</p>`;
  return html`<div class="table-wrap"><table class="data audit">
  <thead><tr><th>Time (UTC)</th><th>Actor</th><th>Action</th><th>Target</th><th>Change</th><th>IP</th><th>Request</th></tr></thead>
  <tbody>${rows.map((r) => html`<tr>
    <td>${when(r.at)}</td>
    <td>${r.actor_id ? html`<a href="/admin/users/${r.actor_id}">${r.actor_email ?? `#${r.actor_id}`}</a>` : html`<span class="muted">system</span>`}</td>
    <td><code>${r.action}</code></td>
    <td>${r.target_type === 'user' && r.target_email ? html`<a href="/admin/users/${r.target_id}">${r.target_email}</a>` : `${r.target_type ?? ''} ${r.target_id ?? ''}`}</td>
    <td>${changes(r.before, r.after)}</td>
    <td>${r.ip ?? '—'}</td>
    <td class="muted small">${r.request_id ?? ''}${r.client_request_id ? html`<br>client: ${r.client_request_id}` : ''}</td></tr>`)}
  </tbody></table></div>`;
}

const AUDIT_PAGE_SIZE = 50;

adminAudit.get('/admin/audit', async (c) => {
  const db = c.get('deps').db;
  const q = (k: string) => (c.req.query(k) ?? '').trim().slice(0, 254);
  const f: AuditFilters = { actor: q('actor'), action: q('action'), target: q('target'), from: q('from'), to: q('to') };
  const errors = auditProblems(f);
  const pageNo = pageParam(c.req.query('page'));
  const actions = (await db.query<{ action: string }>(sql`SELECT DISTINCT action FROM audit_log ORDER BY action`)).map((r) => r.action);
  const valid = !Object.keys(errors).length;
  const { rows, total } = valid ? await loadAudit(db, f, pageNo, AUDIT_PAGE_SIZE) : { rows: [], total: 0 };
  return c.html(page(c, {
    title: 'Audit log',
    body: html`<main>
  <h1>Audit log</h1>
  ${formError(valid ? undefined : 'Fix the filters below.')}
  <form method="get" action="/admin/audit" class="filters" role="search">
    ${field({ name: 'actor', label: 'Actor (email or id)', value: f.actor, error: errors.actor })}
    ${selectField({ name: 'action', label: 'Action', options: [['', 'Any action'], ...actions.map((a) => [a, a] as [string, string])], value: f.action, error: errors.action })}
    ${field({ name: 'target', label: 'Target user (email or id)', value: f.target, error: errors.target })}
    ${field({ name: 'from', label: 'From (YYYY-MM-DD)', value: f.from, error: errors.from })}
    ${field({ name: 'to', label: 'To (YYYY-MM-DD)', value: f.to, error: errors.to })}
    <div class="field"><button type="submit">Filter</button> <a href="/admin/audit">Clear</a></div>
  </form>
  ${valid ? html`${auditTable(rows)}${pager('/admin/audit', f as Record<string, string>, pageNo, total, AUDIT_PAGE_SIZE)}` : ''}
</main>`,
  }), valid ? 200 : 400);
});
