// npm run traffic -- [--base URL] [--users N] [--rate R] [--duration D] [--max-requests M] [--seed S] [--outbox DIR]
//   [--analysts N --managers N (--analyst EMAIL:PASSWORD --manager EMAIL:PASSWORD | --create-staff)] ...
// Drives a running Marquee over real HTTP as people would (etl/traffic/driver.ts) and prints what it did.
// Exit codes: 0 done, 2 bad flags, 1 the site never answered.
import fs from 'node:fs';
import path from 'node:path';
import { configOrExit } from '../server/config.ts';
import { argsOrExit } from '../server/cli.ts';
import { startTraffic, formatSummary, type StaffLogin } from './traffic/driver.ts';
import { createStaffAccounts } from './traffic/staff.ts';
import { openDatabase } from '../server/db/connect.ts';
import { createDb } from '../server/db/index.ts';

export const USAGE = `usage: npm run traffic -- [flags]
  --base URL          the site (default http://127.0.0.1:<PORT>, PORT from the environment, else 3000)
  --users N           simulated people, 1-100000 (default 50)
  --rate R            visits started per second, > 0 and <= 1000 (default 2)
  --duration D        how long: seconds, or with a unit 30s, 5m, 1h (default 30s; at most 24h)
  --max-requests M    stop after this many requests (default 100000)
  --seed S            integer; the people's choices are deterministic by seed (default 42)
  --outbox DIR        where the server writes mail: sign-ups are confirmed from there (default: MARQUEE_OUTBOX_DIR
                      or <MARQUEE_DATA_DIR>/outbox when the base URL is local and that directory or its
                      parent exists)
  --no-confirm        never confirm sign-ups (they stop at "check your email")
  --decline-share X   share of checkouts tried first with the declined test card, 0-1 (default 0.2)
  --analysts N        staff people opening report pages with varied parameters (default 0; in addition to --users)
  --managers N        staff people opening dashboards with filters (default 0; in addition to --users)
  --analyst E:P       the analyst account they sign in with: email:password (repeat for several accounts)
  --manager E:P       the manager account, likewise
  --forwarded-for     send each person's own address (10.x.y.z) in X-Forwarded-For, for a server behind a proxy
                      (MARQUEE_TRUST_PROXY=1): per-address limits then see people, not the driver's one address
  --create-staff      create an analyst and a manager account (random passwords, printed) in the site's database:
                      DATABASE_URL, else the embedded PostgreSQL under MARQUEE_DATA_DIR (a local server's own)
  --help`;

class FlagError extends Error {}

export interface TrafficFlags {
  base?: string; users: number; rate: number; durationMs: number; maxRequests: number; seed: number;
  outbox?: string; noConfirm: boolean; declineShare: number; help: boolean;
  analysts: number; managers: number; logins: StaffLogin[]; createStaff: boolean; forwardedFor: boolean;
}

export function parseFlags(argv: string[]): TrafficFlags {
  const f: TrafficFlags = { users: 50, rate: 2, durationMs: 30_000, maxRequests: 100_000, seed: 42, noConfirm: false, declineShare: 0.2, help: false,
    analysts: 0, managers: 0, logins: [], createStaff: false, forwardedFor: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let value: string | undefined;
    if (a.includes('=')) { value = a.slice(a.indexOf('=') + 1); a = a.slice(0, a.indexOf('=')); }
    const need = () => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new FlagError(`${a} needs a value`);
      return v;
    };
    const num = (min: number, max: number, int: boolean) => {
      const raw = need(), n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min || n > max) {
        throw new FlagError(`${a} must be ${int ? 'an integer' : 'a number'} ${min === 0 && !int ? '> 0' : `>= ${min}`} and <= ${max}, got ${JSON.stringify(raw)}`);
      }
      return n;
    };
    switch (a) {
      case '--base': {
        const raw = need();
        let u: URL;
        try { u = new URL(raw); } catch { throw new FlagError(`--base must be a URL like http://127.0.0.1:3000, got ${JSON.stringify(raw)}`); }
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FlagError(`--base must start with http:// or https://, got ${JSON.stringify(raw)}`);
        f.base = raw; break;
      }
      case '--users': f.users = num(1, 100_000, true); break;
      case '--rate': { const r = num(0, 1000, false); if (r <= 0) throw new FlagError(`--rate must be > 0, got ${r}`); f.rate = r; break; }
      case '--duration': {
        const raw = need();
        const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
        const ms = m ? Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] as number) : NaN;
        if (!m || !(ms > 0) || ms > 86_400_000) throw new FlagError(`--duration must be a time > 0 and <= 24h such as 30, 30s, 5m, got ${JSON.stringify(raw)}`);
        f.durationMs = ms; break;
      }
      case '--max-requests': f.maxRequests = num(1, 100_000_000, true); break;
      case '--seed': f.seed = num(0, 2 ** 31 - 1, true); break;
      case '--outbox': f.outbox = need(); break;
      case '--no-confirm': f.noConfirm = true; break;
      case '--decline-share': { const x = num(0, 1, false); f.declineShare = x; break; }
      case '--analysts': f.analysts = num(0, 10_000, true); break;
      case '--managers': f.managers = num(0, 10_000, true); break;
      case '--analyst': case '--manager': {
        const raw = need(), at = raw.indexOf(':');
        if (at < 1 || at === raw.length - 1 || !raw.slice(0, at).includes('@')) throw new FlagError(`${a} must be EMAIL:PASSWORD, got ${JSON.stringify(raw.replace(/:.*/, ':…'))}`);
        f.logins.push({ role: a === '--analyst' ? 'analyst' : 'manager', email: raw.slice(0, at), password: raw.slice(at + 1) });
        break;
      }
      case '--create-staff': f.createStaff = true; break;
      case '--forwarded-for': f.forwardedFor = true; break;
      case '--help': case '-h': f.help = true; break;
      default: throw new FlagError(`unknown flag ${JSON.stringify(a)}`);
    }
  }
  if (f.createStaff && f.logins.length) throw new FlagError('--create-staff makes its own accounts: give it or --analyst/--manager, not both');
  for (const role of ['analyst', 'manager'] as const) {
    const n = role === 'analyst' ? f.analysts : f.managers;
    if (n && !f.createStaff && !f.logins.some((l) => l.role === role)) throw new FlagError(`--${role}s ${n} needs --${role} EMAIL:PASSWORD or --create-staff`);
  }
  return f;
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (isMain) {
  const flags = argsOrExit('traffic', USAGE, () => parseFlags(process.argv.slice(2)), (e) => e instanceof FlagError);
  const config = configOrExit(process.env, 'traffic');
  const base = flags.base ?? `http://127.0.0.1:${config.port}`;
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(base).hostname);
  let outboxDir: string | undefined;
  if (flags.noConfirm) outboxDir = undefined;
  else if (flags.outbox) {
    if (!fs.existsSync(flags.outbox)) { console.error(`traffic: --outbox ${flags.outbox} does not exist`); process.exit(2); }
    outboxDir = flags.outbox;
  } else if (local && (fs.existsSync(config.outboxDir) || fs.existsSync(path.dirname(config.outboxDir)))) {
    outboxDir = config.outboxDir; // a fresh server makes the directory at its first message
  }
  let logins = flags.logins;
  if (flags.createStaff) {
    const target = await openDatabase(config, (l) => console.error(l), { shareRunning: true });
    const db = createDb(target.url, { max: 2, applicationName: 'marquee-traffic' });
    try {
      logins = await createStaffAccounts(db, `traffic-${flags.seed}-${Date.now().toString(36)}`);
      for (const l of logins) console.error(`traffic: created the ${l.role} ${l.email} (password ${l.password})`);
    } catch (e: any) {
      console.error(`traffic: could not create the staff accounts: ${e.message}`);
      process.exit(1);
    } finally {
      await db.close().catch(() => {});
      await target.stop().catch(() => {});
    }
  }
  console.error(`traffic: ${base}, ${flags.users} people${flags.analysts + flags.managers ? ` + ${flags.analysts} analysts and ${flags.managers} managers` : ''}, ${flags.rate} visits/s for ${flags.durationMs / 1000} s (at most ${flags.maxRequests} requests), seed ${flags.seed}; ` +
    (outboxDir ? `sign-ups confirmed from the outbox ${outboxDir}` : 'no outbox readable (give --outbox DIR): sign-ups stop at "check your email" and those people browse on'));
  const t = startTraffic({ base, users: flags.users, rate: flags.rate, durationMs: flags.durationMs, maxRequests: flags.maxRequests,
    seed: flags.seed, outboxDir, declineShare: flags.declineShare, log: (l) => console.error(l), forwardedFor: flags.forwardedFor,
    staff: flags.analysts + flags.managers ? { analysts: flags.analysts, managers: flags.managers, logins } : undefined });
  const onSignal = () => { console.error('traffic: stopping (the visits under way finish)'); void t.stop(); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const s = await t.done;
  console.log(formatSummary(s));
  const answered = s.requests - s.networkErrors;
  if (s.requests > 0 && answered === 0) { console.error(`traffic: ${base} never answered`); process.exit(1); }
  process.exit(0);
}
