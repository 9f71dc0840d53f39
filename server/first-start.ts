// What a new database needs before it serves: the first admin, and (unless MARQUEE_DEMO=0) the demo data.
import { randomBytes } from 'node:crypto';
import type { Db } from './db/index.ts';
import type { Config } from './config.ts';
import { hashPassword, passwordProblem } from './auth/password.ts';
import { demoDataSteps } from './demo-data.ts';

export interface FirstStartResult { adminEmail: string; generatedPassword?: string; created: boolean }

/** Why MARQUEE_ADMIN_PASSWORD is refused, if it is (main.ts checks it before anything starts). */
export function adminPasswordProblem(config: Pick<Config, 'adminEmail' | 'adminPassword'>): string | undefined {
  const problem = config.adminPassword !== undefined ? passwordProblem(config.adminPassword, config.adminEmail) : undefined;
  return problem && `MARQUEE_ADMIN_PASSWORD is refused: ${problem.replace(/^./, (ch) => ch.toLowerCase())} (or unset it: a random password is generated and printed once)`;
}

export async function ensureFirstAdmin(db: Db, config: Pick<Config, 'adminEmail' | 'adminPassword'>): Promise<FirstStartResult> {
  const email = config.adminEmail;
  // Checked at every start, not only when the admin is created: a weak value is a configuration error either way.
  const problem = adminPasswordProblem(config);
  if (problem) throw new Error(problem);
  const existing = await db.one<{ email: string }>(`SELECT email FROM users WHERE role = 'admin' ORDER BY id LIMIT 1`);
  if (existing) return { adminEmail: existing.email, created: false };
  const generated = config.adminPassword ? undefined : randomBytes(12).toString('base64url');
  const hash = await hashPassword(config.adminPassword ?? generated!);
  // Serialize with other instances starting at once: only the first creates the admin.
  const created = await db.tx(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock(7201100002)');
    if (await q.one(`SELECT 1 FROM users WHERE role = 'admin'`)) return false;
    await q.query(`INSERT INTO users (email, display_name, role, password_hash) VALUES ($1, 'Administrator', 'admin', $2)`, [email, hash]);
    await q.query(`INSERT INTO audit_log (action, target_type, target_id, after) VALUES ('user.create', 'user', $1, $2)`,
      [email, JSON.stringify({ email, role: 'admin', via: 'first start' })]);
    return true;
  });
  return { adminEmail: email, generatedPassword: created ? generated : undefined, created };
}

/** Runs each demo-data step whose data is missing. MARQUEE_DEMO=0 skips them all. */
export async function ensureDemoData(db: Db, config: Pick<Config, 'demo'>, log = (l: string) => console.log(l)) {
  if (!config.demo) { log('MARQUEE_DEMO=0: skipping demo data'); return; }
  for (const step of demoDataSteps) {
    if (await step.present(db)) continue;
    log(`demo data: ${step.name}…`);
    const started = Date.now();
    await step.load(db, log);
    log(`demo data: ${step.name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}
