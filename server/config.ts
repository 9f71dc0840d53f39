// Configuration: read once from the environment into one typed object (main.ts and the CLIs call loadConfig), then
// passed down (Deps.config, openDatabase(config)). No other module reads process.env. Every variable is one row of
// VARIABLES below — its default, its parser (which names the variable and the bad value in its message) and the
// README's description — and test/config.test.ts checks the README's configuration table lists exactly these rows.
import path from 'node:path';

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  /** A streaming standby of the primary that report runs read from (server/db/replica.ts); undefined: none. */
  databaseReplicaUrl: string | undefined;
  /** Further behind than this (ms), the replica is passed over and reports read from the primary. */
  replicaMaxLagMs: number;
  dataDir: string;
  adminEmail: string;
  adminPassword: string | undefined;
  demo: boolean;
  /** A light live-traffic driver inside the server (etl/traffic/driver.ts): the demo's business moves. */
  demoTraffic: boolean;
  poolSize: number;
  secureCookies: boolean;
  sessionIdleMs: number;
  sessionMaxMs: number;
  signupsPerIpHour: number;
  trustProxy: boolean;
  reportsDir: string | undefined;
  dashboardsDir: string | undefined;
  martWorkMem: string;
  /** Marts a refresh builds at once, each on its own connection (server/reports/marts.ts). */
  martParallel: number;
  csvStreams: number;
  reportCache: boolean;
  etlTrace: boolean;
  /** The origins browsers reach this server by; undefined: the listen address (server/auth/origins.ts). */
  publicUrls: string[] | undefined;
  /** Where outgoing mail is written, one .eml file per message (server/mail/outbox.ts). */
  outboxDir: string;
  /** An smtp:// or smtps:// URL digests are sent through (nodemailer); undefined: they are written to the outbox. */
  smtpUrl: string | undefined;
  /** As root: where PostgreSQL binaries and clusters the postgres user cannot reach in place are put. */
  pgHome: string;
  /** Embed signing keys (kid, secret), the first one signs; empty: one generated and kept in the database. */
  embedKeys: EmbedKey[];
  /** Requests per minute one API token may make (per process); beyond: 429 with Retry-After. */
  apiTokenRate: number;
  /** TESTS ONLY: a `test.tick` job firing every second (test/faults.test.ts). */
  testTickJob: boolean;
  /** TESTS ONLY: the job scheduler's clock shifted by this many ms (plays an instance whose clock is off). */
  testClockSkewMs: number;
}

export interface EmbedKey { kid: string; secret: Uint8Array }

export class ConfigError extends Error {
  constructor(public problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

type Parse<T> = (raw: string, name: string) => T;

const fail = (name: string, want: string, raw: string) => { throw new Error(`${name} must be ${want}, got ${JSON.stringify(raw)}`); };
const int = (min: number, max: number): Parse<number> => (raw, name) => {
  const n = Number(raw);
  return Number.isInteger(n) && n >= min && n <= max && raw.trim() !== '' ? n : fail(name, `an integer ${min}-${max}`, raw);
};
const positive: Parse<number> = (raw, name) => {
  const n = Number(raw);
  return Number.isFinite(n) && n > 0 && raw.trim() !== '' ? n : fail(name, 'a positive number', raw);
};
const flag: Parse<boolean> = (raw, name) => raw === '1' ? true : raw === '0' ? false : fail(name, '0 or 1', raw);
const text: Parse<string> = (raw) => raw;
const nonEmpty: Parse<string> = (raw, name) => raw.trim() ? raw.trim() : fail(name, 'non-empty', raw);
const postgresUrl: Parse<string> = (raw, name) => {
  try {
    const u = new URL(raw);
    if (u.protocol === 'postgres:' || u.protocol === 'postgresql:') return raw;
  } catch { /* below */ }
  return fail(name, 'a postgres:// or postgresql:// URL', raw.replace(/:[^:@/]*@/, ':***@'));
};

/** "scheme://host[:port]" from a configured value, or an Error saying what is wrong with it. */
export function parseOrigin(value: string, name = 'MARQUEE_PUBLIC_URL'): string {
  let u: URL;
  try { u = new URL(value); } catch { throw new Error(`${name}: "${value}" is not a URL like https://marquee.example.com`); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${name}: "${value}" must start with http:// or https://`);
  if (u.username || u.password || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new Error(`${name}: "${value}" must be an origin only (scheme, host and optional port; no path, query or user)`);
  }
  return u.origin;
}

/** "kid:base64secret,kid2:base64secret2": key ids of 1-64 of [A-Za-z0-9_-], secrets of at least 32 bytes. */
export function parseEmbedKeys(raw: string, name = 'MARQUEE_EMBED_KEYS'): EmbedKey[] {
  const keys = raw.split(',').map((s) => s.trim()).filter(Boolean).map((entry) => {
    const m = /^([A-Za-z0-9_-]{1,64}):([A-Za-z0-9+/_=-]+)$/.exec(entry);
    if (!m) throw new Error(`${name} must be a comma-separated list of kid:base64secret, got an entry "${entry.split(':')[0]}:…"`);
    const secret = Buffer.from(m[2], m[2].includes('-') || m[2].includes('_') ? 'base64url' : 'base64');
    if (secret.length < 32) throw new Error(`${name}: the secret of key "${m[1]}" has ${secret.length} bytes; use at least 32 (openssl rand -base64 32)`);
    return { kid: m[1], secret: new Uint8Array(secret) };
  });
  const kids = keys.map((k) => k.kid);
  const dup = kids.find((k, i) => kids.indexOf(k) !== i);
  if (dup) throw new Error(`${name}: the key id "${dup}" appears twice`);
  return keys;
}

interface Variable<K extends keyof Config> {
  key: K;
  /** The value when the variable is unset or empty. */
  fallback: Config[K];
  parse: Parse<NonNullable<Config[K]>>;
}
const v = <K extends keyof Config>(key: K, fallback: Config[K], parse: Parse<NonNullable<Config[K]>>): Variable<K> =>
  ({ key, fallback, parse });

/** Every environment variable the product reads, by name. */
export const VARIABLES = {
  PORT: v('port', 3000, int(0, 65535)),
  HOST: v('host', '127.0.0.1', nonEmpty),
  DATABASE_URL: v('databaseUrl', undefined, postgresUrl),
  DATABASE_REPLICA_URL: v('databaseReplicaUrl', undefined, postgresUrl),
  MARQUEE_REPLICA_MAX_LAG_MS: v('replicaMaxLagMs', 30_000, int(0, 86_400_000)),
  MARQUEE_DATA_DIR: v('dataDir', 'var', nonEmpty),
  MARQUEE_ADMIN_EMAIL: v('adminEmail', 'admin@localhost', nonEmpty),
  MARQUEE_ADMIN_PASSWORD: v('adminPassword', undefined, text),
  MARQUEE_DEMO: v('demo', true, flag),
  MARQUEE_DEMO_TRAFFIC: v('demoTraffic', false, flag),
  MARQUEE_POOL_SIZE: v('poolSize', 20, int(1, 1000)),
  MARQUEE_SECURE_COOKIES: v('secureCookies', false, flag),
  MARQUEE_SESSION_IDLE_MINUTES: v('sessionIdleMs', 30 * 60_000, (raw, name) => positive(raw, name) * 60_000),
  MARQUEE_SESSION_MAX_HOURS: v('sessionMaxMs', 12 * 3_600_000, (raw, name) => positive(raw, name) * 3_600_000),
  MARQUEE_SIGNUPS_PER_IP_HOUR: v('signupsPerIpHour', 20, int(1, 1_000_000)),
  MARQUEE_TRUST_PROXY: v('trustProxy', false, flag),
  MARQUEE_REPORTS_DIR: v('reportsDir', undefined, nonEmpty),
  MARQUEE_DASHBOARDS_DIR: v('dashboardsDir', undefined, nonEmpty),
  MARQUEE_MART_WORK_MEM: v('martWorkMem', '256MB', (raw, name) => /^\d{1,7}(kB|MB|GB)$/.test(raw) ? raw : fail(name, 'a size such as 256MB', raw)),
  MARQUEE_MART_PARALLEL: v('martParallel', 3, int(1, 32)),
  MARQUEE_CSV_STREAMS: v('csvStreams', 4, int(1, 1000)),
  MARQUEE_REPORT_CACHE: v('reportCache', true, flag),
  MARQUEE_ETL_TRACE: v('etlTrace', false, flag),
  MARQUEE_PUBLIC_URL: v('publicUrls', undefined, (raw, name) => raw.split(/[\s,]+/).filter(Boolean).map((o) => parseOrigin(o, name))),
  MARQUEE_OUTBOX_DIR: v('outboxDir', '', nonEmpty),
  MARQUEE_SMTP_URL: v('smtpUrl', undefined, (raw, name) => {
    try { if (/^smtps?:$/.test(new URL(raw).protocol)) return raw; } catch { /* below */ }
    return fail(name, 'an smtp:// or smtps:// URL', raw.replace(/:[^:@/]*@/, ':***@'));
  }),
  MARQUEE_PG_HOME: v('pgHome', '/var/lib/marquee', (raw) => path.resolve(raw)),
  MARQUEE_EMBED_KEYS: v('embedKeys', [], parseEmbedKeys),
  MARQUEE_API_TOKEN_RATE: v('apiTokenRate', 120, int(1, 1_000_000)),
  MARQUEE_TEST_TICK_JOB: v('testTickJob', false, flag),
  MARQUEE_TEST_CLOCK_SKEW_MS: v('testClockSkewMs', 0, int(-86_400_000, 86_400_000)),
} satisfies Record<string, Variable<any>>;

/**
 * The configuration from `env` (process.env by default): every variable parsed, every problem reported at once
 * (ConfigError lists them, one line each, naming the variable and the value). An empty variable means its default.
 * `loadConfig({})` is the defaults (what tests get).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(VARIABLES) as [string, Variable<keyof Config>][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') { out[spec.key] = spec.fallback; continue; }
    try { out[spec.key] = spec.parse(raw, name); } catch (e: any) { problems.push(e.message); }
  }
  if (problems.length) throw new ConfigError(problems);
  const config = out as unknown as Config;
  config.dataDir = path.resolve(config.dataDir);
  config.outboxDir = config.outboxDir ? path.resolve(config.outboxDir) : path.join(config.dataDir, 'outbox');
  return config;
}

/** The defaults, for tests and tools that take no environment (a fresh object each time: callers may change it). */
export const defaultConfig = (overrides: Partial<Config> = {}): Config => ({ ...loadConfig({}), ...overrides });

/** For entry points (the server and the CLIs): the configuration, or the problems printed and exit status 2. */
export function configOrExit(env: Record<string, string | undefined> = process.env, program = 'marquee'): Config {
  try {
    return loadConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`${program}: ${e.message}`);
    process.exit(2);
  }
}
