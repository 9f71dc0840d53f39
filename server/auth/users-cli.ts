// Operator CLI: npm run users -- <command> [options]. Uses DATABASE_URL, else the embedded PostgreSQL under
// MARQUEE_DATA_DIR (./var) — the running server's when it is up, otherwise started for the command and stopped after.
// Every change goes through the same operations as the admin pages (audit rows, last-admin guard, sessions ended).
import { configOrExit } from '../config.ts';
import { parseArgs } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import sql from 'sql-template-tag';
import { createDb, type Db } from '../db/index.ts';
import { openDatabase } from '../db/connect.ts';
import { migrate } from '../db/migrate.ts';
import { ROLES, type Role } from './roles.ts';
import { legacySha256Hash } from './password.ts';
import { accountProblems } from './signup.ts';
import { createAccount, updateAccount, resetPassword, findUserByEmail, UserOpError, type Status } from '../admin/user-ops.ts';
import type { AuditContext } from '../admin/audit.ts';
import { createApiToken, TokenInputError } from './api-tokens.ts';

const USAGE = `usage: npm run users -- <command> [options]

  create --email E --role R [--name N] [--password P]   create a user (no --password: a temporary one is printed,
                                                         to be changed at first sign-in)
  set-role --email E --role R                            change a user's role (ends their sessions)
  reset-password --email E [--password P]                set a password (no --password: temporary, printed once)
  disable --email E                                      disable a user (ends their sessions)
  enable --email E                                       enable a disabled user
  token --email E --name N [--days D]                   create a personal API token for the user (printed once;
                                                         default 90 days, at most 365)
  list [--role R] [--status active|disabled] [--search S] [--limit N]
  import FILE.csv [--skip-existing]                      import users from the original system: CSV with a header
                                                         email,name,role,sha256 (hex SHA-256 of the password); their
                                                         first sign-in rehashes to argon2id. All rows or none.
roles: ${ROLES.join(', ')} (import also accepts the original "user" = subscriber)`;

class UsageError extends Error {}

function ctx(): AuditContext {
  return { actorId: null, ip: null, requestId: `cli-${randomUUID()}`, now: new Date() };
}

function role(v: string | undefined): Role {
  if (!v || !ROLES.includes(v as Role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
  return v as Role;
}

async function requireUser(db: Db, email: string | undefined) {
  if (!email) throw new UsageError('--email is required');
  const u = await findUserByEmail(db, email);
  if (!u) throw new UserOpError(`no user with email ${email}`);
  return u;
}

/** A minimal RFC 4180 reader (quotes, doubled quotes, CRLF); yields [lineNumber, fields]. */
export function* csvRows(text: string): Generator<[number, string[]]> {
  let line = 1, start = 1, field = '', row: string[] = [], quoted = false, i = 0;
  const s = text.replace(/^\uFEFF/, '');
  for (; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === '"' && s[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else { if (ch === '\n') line++; field += ch; }
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && s[i + 1] === '\n') i++;
      row.push(field); field = '';
      if (row.length > 1 || row[0] !== '') yield [start, row];
      row = []; line++; start = line;
    } else field += ch;
  }
  if (quoted) throw new UsageError(`line ${start}: unterminated quoted field`);
  row.push(field);
  if (row.length > 1 || row[0] !== '') yield [start, row];
}

export interface ImportResult { imported: number; skipped: number }

/** Imports legacy users (all or nothing). Errors name the line and field. */
export async function importLegacyUsers(db: Db, file: string, opts: { skipExisting?: boolean; audit?: AuditContext } = {}): Promise<ImportResult> {
  const rows = [...csvRows(fs.readFileSync(file, 'utf8'))];
  if (!rows.length) throw new UsageError(`${file} is empty`);
  const header = rows[0][1].map((h) => h.trim().toLowerCase());
  const col = (...names: string[]) => header.findIndex((h) => names.includes(h));
  const idx = { email: col('email'), name: col('name', 'display_name'), role: col('role'), hash: col('sha256', 'password_hash', 'hash', 'password_sha256') };
  const hasHeader = idx.email >= 0;
  if (!hasHeader) Object.assign(idx, { email: 0, name: 1, role: 2, hash: 3 });
  else for (const [k, v] of Object.entries(idx)) if (v < 0) throw new UsageError(`${file} line 1: the header has no "${k === 'hash' ? 'sha256' : k}" column`);
  const errors: string[] = [];
  const users: { line: number; email: string; name: string; role: Role; hash: string }[] = [];
  const seen = new Map<string, number>();
  for (const [line, f] of rows.slice(hasHeader ? 1 : 0)) {
    const email = (f[idx.email] ?? '').trim(), name = (f[idx.name] ?? '').trim() || email.split('@')[0];
    let r = (f[idx.role] ?? '').trim().toLowerCase();
    if (r === 'user') r = 'subscriber';
    const problems = accountProblems({ email, display_name: name });
    for (const [k, m] of Object.entries(problems)) errors.push(`line ${line}: ${k}: ${m}`);
    if (!ROLES.includes(r as Role)) errors.push(`line ${line}: role: "${f[idx.role] ?? ''}" is not one of ${ROLES.join(', ')}, user`);
    let hash = '';
    try { hash = legacySha256Hash(f[idx.hash] ?? ''); } catch (e: any) { errors.push(`line ${line}: sha256: ${e.message}`); }
    const key = email.toLowerCase();
    if (seen.has(key)) errors.push(`line ${line}: email: ${email} already appears on line ${seen.get(key)}`);
    seen.set(key, line);
    users.push({ line, email, name, role: r as Role, hash });
  }
  if (errors.length) throw new UsageError(`${file}: nothing imported:\n  ${errors.slice(0, 50).join('\n  ')}${errors.length > 50 ? `\n  … and ${errors.length - 50} more` : ''}`);
  const audit = opts.audit ?? ctx();
  return db.tx(async (q) => {
    const existing = new Set((await q.query<{ e: string }>(sql`SELECT lower(email) AS e FROM users WHERE lower(email) = ANY(${users.map((u) => u.email.toLowerCase())})`)).map((r) => r.e));
    if (existing.size && !opts.skipExisting) {
      const lines = users.filter((u) => existing.has(u.email.toLowerCase())).map((u) => `line ${u.line}: email: ${u.email} already exists`);
      throw new UsageError(`${file}: nothing imported (use --skip-existing to skip them):\n  ${lines.slice(0, 50).join('\n  ')}`);
    }
    // One INSERT for all rows and one for their audit entries (an export can hold many thousands of customers).
    const fresh = users.filter((u) => !existing.has(u.email.toLowerCase()));
    const col = <K extends keyof (typeof fresh)[number]>(k: K) => fresh.map((u) => u[k]);
    const inserted = await q.query<{ id: number; email: string }>(sql`INSERT INTO users (email, display_name, role, password_hash, created_at)
      SELECT e, n, r, h, ${audit.now} FROM unnest(${col('email')}::text[], ${col('name')}::text[], ${col('role')}::text[], ${col('hash')}::text[]) AS x(e, n, r, h)
      RETURNING id, email`);
    const idByEmail = new Map(inserted.map((r) => [r.email.toLowerCase(), r.id]));
    const source = path.basename(file);
    await q.query(sql`INSERT INTO audit_log (at, actor_id, action, target_type, target_id, after, ip, request_id)
      SELECT ${audit.now}, ${audit.actorId}, 'user.import', 'user', id::text, after, ${audit.ip}::inet, ${audit.requestId}
      FROM unnest(${fresh.map((u) => idByEmail.get(u.email.toLowerCase()))}::bigint[],
                  ${fresh.map((u) => JSON.stringify({ email: u.email, display_name: u.name, role: u.role, source, line: u.line }))}::jsonb[]) AS x(id, after)`);
    const imported = inserted.length;
    return { imported, skipped: users.length - imported };
  });
}

export async function runCommand(db: Db, argv: string[], out: (l: string) => void): Promise<void> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true, strict: true,
    options: { email: { type: 'string' }, password: { type: 'string' }, role: { type: 'string' }, name: { type: 'string' },
      status: { type: 'string' }, days: { type: 'string' }, search: { type: 'string' }, limit: { type: 'string' }, 'skip-existing': { type: 'boolean' } },
  });
  switch (command) {
    case 'create': {
      if (!values.email) throw new UsageError('--email is required');
      const r = await createAccount(db, ctx(), { email: values.email, displayName: values.name ?? values.email.split('@')[0],
        role: role(values.role), password: values.password });
      out(`created user ${r.id} ${values.email} (${values.role})`);
      if (r.temporaryPassword) out(`temporary password (shown once; must be changed at first sign-in): ${r.temporaryPassword}`);
      return;
    }
    case 'set-role': {
      const u = await requireUser(db, values.email);
      const r = await updateAccount(db, ctx(), u.id, { role: role(values.role) });
      out(r.changed.length ? `${u.email}: role ${u.role} -> ${values.role}; ${r.sessionsEnded} session(s) ended` : `${u.email} is already ${values.role}`);
      return;
    }
    case 'reset-password': {
      const u = await requireUser(db, values.email);
      const r = await resetPassword(db, ctx(), u.id, values.password);
      out(`${u.email}: password reset; ${r.sessionsEnded} session(s) ended`);
      if (r.temporaryPassword) out(`temporary password (shown once; must be changed at next sign-in): ${r.temporaryPassword}`);
      return;
    }
    case 'disable': case 'enable': {
      const u = await requireUser(db, values.email);
      const status: Status = command === 'disable' ? 'disabled' : 'active';
      const r = await updateAccount(db, ctx(), u.id, { status });
      out(r.changed.length ? `${u.email}: ${command}d; ${r.sessionsEnded} session(s) ended` : `${u.email} is already ${status}`);
      return;
    }
    case 'token': {
      const u = await requireUser(db, values.email);
      if (!values.name) throw new UsageError('--name is required (what the token is for)');
      const t = await createApiToken(db, ctx(), u.id, { name: values.name, days: values.days });
      out(`API token ${t.id} for ${u.email} (${u.role}), valid until ${t.expiresAt.toISOString()}; shown once, keep it now:`);
      out(t.token);
      return;
    }
    case 'list': {
      const limit = Number(values.limit ?? 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UsageError('--limit must be an integer 1-100000');
      if (values.role) role(values.role);
      if (values.status && values.status !== 'active' && values.status !== 'disabled') throw new UsageError('--status must be active or disabled');
      const like = values.search ? `%${values.search.replace(/[\\%_]/g, (m) => '\\' + m)}%` : null;
      const rows = await db.query(sql`SELECT id, email, display_name, role, status, must_change_password, last_login_at
        FROM users WHERE (${values.role ?? null}::text IS NULL OR role = ${values.role ?? null})
          AND (${values.status ?? null}::text IS NULL OR status = ${values.status ?? null})
          AND (${like}::text IS NULL OR email ILIKE ${like} OR display_name ILIKE ${like})
          AND NOT simulated
        ORDER BY id LIMIT ${limit}`);
      out(['id', 'email', 'name', 'role', 'status', 'last_login'].join('\t'));
      for (const r of rows) {
        out([r.id, r.email, r.display_name, r.role, r.status + (r.must_change_password ? ' (must change password)' : ''),
          r.last_login_at ? r.last_login_at.toISOString() : '-'].join('\t'));
      }
      return;
    }
    case 'import': {
      const file = positionals[0];
      if (!file) throw new UsageError('import needs a CSV file');
      if (!fs.existsSync(file)) throw new UsageError(`${file} does not exist`);
      const r = await importLegacyUsers(db, file, { skipExisting: values['skip-existing'] });
      out(`imported ${r.imported} user(s)${r.skipped ? `, skipped ${r.skipped} existing` : ''}; each is rehashed to argon2id at first sign-in`);
      return;
    }
    default:
      throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
  }
}

async function main() {
  const argv = process.argv.slice(2);
  if (!argv.length || argv[0] === '--help' || argv[0] === 'help') { console.log(USAGE); return 0; }
  // Beside a running server this shares its embedded PostgreSQL instead of starting a second one on the same data.
  const target = await openDatabase(configOrExit(process.env, 'users'), () => {}, { shareRunning: true });
  const url = target.url;
  const stop = target.stop;
  const db = createDb(url, { max: 2, applicationName: 'marquee-users-cli' });
  try {
    await migrate(db);
    await runCommand(db, argv, (l) => console.log(l));
    return 0;
  } catch (e: any) {
    const argError = String(e?.code ?? '').startsWith('ERR_PARSE_ARGS');
    if (e instanceof TokenInputError) { console.error(`users: ${e.message}`); return 2; }
    if (e instanceof UsageError || e instanceof UserOpError || argError) {
      console.error(`users: ${e instanceof UserOpError && e.field ? `${e.field}: ` : ''}${e.message}`);
      if (!(e instanceof UserOpError)) console.error(`\n${USAGE}`);
      return 2;
    }
    throw e;
  } finally {
    await db.close();
    await stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('users-cli.ts')) {
  main().then((code) => process.exit(code), (e) => { console.error(`users: ${e.stack ?? e.message}`); process.exit(1); });
}
