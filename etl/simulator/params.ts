// Simulator parameters: DESIGN.md's figures as defaults (etl/profiles/default.json), overridable by a JSON profile
// (--profile) and then by flags.
// Every business parameter is a flag named like the JSON key in kebab-case. Validation names the flag or key at fault.
import fs from 'node:fs';
import path from 'node:path';

export const PLAN_CODES = ['standard_with_ads', 'standard', 'premium'] as const;
export type PlanCode = (typeof PLAN_CODES)[number];
export type PerPlan = Record<PlanCode, number>;

export interface BusinessParams {
  /** Share of new signups per plan (normalized). */
  planMix: PerPlan;
  /** Monthly probability that a subscriber on the plan asks to cancel (voluntary churn). */
  voluntaryChurn: PerPlan;
  /** Multiplier on voluntary churn during a subscription's first `newSubscriberMonths` months. */
  newSubscriberChurnMultiplier: number;
  newSubscriberMonths: number;
  serialChurnerShare: number;
  serialChurnerMultiplier: number;
  /** Share of renewal charges that fail on the first attempt. */
  renewalFailureRate: number;
  /** Share of failed renewals that a dunning retry (days 1, 3, 7, 14) recovers. */
  retryRecoveryRate: number;
  /** Share of first (signup) charges that fail; a second attempt within the day succeeds `initialRetrySuccess` of the time, else the signup expires. */
  initialFailureRate: number;
  initialRetrySuccess: number;
  /** Share of churned customers who come back within 3 and within 12 months. */
  returnWithin3Months: number;
  returnWithin12Months: number;
  /** Share of returning customers who pick their previous plan again. */
  returnSamePlan: number;
  q4SignupMultiplier: number;
  /** Yearly growth of active customers the signup volume is calibrated to. */
  yearlyGrowth: number;
  /** Monthly probabilities of an immediate upgrade / a downgrade scheduled for period end. */
  upgradeRate: number;
  downgradeRate: number;
  cancelRevertRate: number;
  /** Share of succeeded subscription charges that are refunded (a fifth of them partly). */
  refundRate: number;
  /** Visitors who sign up ÷ all visitors. */
  visitToSignupRate: number;
  /** Visits per subscriber per month while subscribed. */
  visitsPerMonth: number;
  /** Mean viewing sessions per subscriber per month. */
  watchSessionsPerMonth: number;
  /** Before a voluntary cancel, viewing falls to this share of normal over `preCancelDays` days … */
  preCancelWatchFactor: number;
  preCancelDays: number;
  /** … for this share of voluntary churners (so churn is predictable, but not perfectly). */
  preCancelSignalShare: number;
}

export interface RunParams {
  users: number;
  months: number;
  seed: number;
  end: string; // YYYY-MM-DD, the window ends at 00:00 UTC of this day
  scale: Scale;
  profile: string;
  batchSize: number;
  reset: boolean;
  quiet: boolean;
  business: BusinessParams;
}

export type Scale = 'small' | 'default' | 'large';
export const SCALES: Record<Scale, { users: number; months: number }> = {
  small: { users: 2_000, months: 12 },
  default: { users: 50_000, months: 12 },
  large: { users: 1_000_000, months: 12 },
};

export class ParamError extends Error {}

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const camel = (k: string) => k.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());

type Bound = { min: number; max: number; integer?: boolean };
const RATE: Bound = { min: 0, max: 1 };
const BOUNDS: Record<keyof BusinessParams, Bound> = {
  planMix: RATE, voluntaryChurn: RATE,
  newSubscriberChurnMultiplier: { min: 0, max: 20 }, newSubscriberMonths: { min: 0, max: 24, integer: true },
  serialChurnerShare: RATE, serialChurnerMultiplier: { min: 0, max: 20 },
  renewalFailureRate: RATE, retryRecoveryRate: { min: 0, max: 0.999 },
  initialFailureRate: RATE, initialRetrySuccess: RATE,
  returnWithin3Months: { min: 0, max: 0.99 }, returnWithin12Months: { min: 0, max: 0.99 }, returnSamePlan: RATE,
  q4SignupMultiplier: { min: 0.1, max: 10 }, yearlyGrowth: { min: -0.5, max: 2 },
  upgradeRate: RATE, downgradeRate: RATE, cancelRevertRate: { min: 0, max: 0.9 }, refundRate: { min: 0, max: 0.5 },
  visitToSignupRate: { min: 0.01, max: 1 }, visitsPerMonth: { min: 0, max: 60 },
  watchSessionsPerMonth: { min: 0, max: 120 }, preCancelWatchFactor: RATE, preCancelDays: { min: 0, max: 120, integer: true },
  preCancelSignalShare: RATE,
};

function checkNumber(name: string, v: unknown, b: Bound): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new ParamError(`${name}: expected a number, got ${JSON.stringify(v)}`);
  if (b.integer && !Number.isInteger(n)) throw new ParamError(`${name}: expected an integer, got ${n}`);
  if (n < b.min || n > b.max) throw new ParamError(`${name}: must be between ${b.min} and ${b.max}, got ${n}`);
  return n;
}

function checkPerPlan(name: string, v: unknown, b: Bound): PerPlan {
  let obj: Record<string, unknown>;
  if (typeof v === 'string') {
    // flag form: standard_with_ads=0.55,standard=0.3,premium=0.15
    obj = {};
    for (const part of v.split(',')) {
      const m = /^\s*([a-z_]+)\s*=\s*(.+?)\s*$/.exec(part);
      if (!m) throw new ParamError(`${name}: expected plan=value pairs like standard_with_ads=0.55,standard=0.3,premium=0.15, got ${JSON.stringify(v)}`);
      obj[m[1]] = m[2];
    }
  } else if (v && typeof v === 'object' && !Array.isArray(v)) obj = v as Record<string, unknown>;
  else throw new ParamError(`${name}: expected an object of plan codes, got ${JSON.stringify(v)}`);
  for (const k of Object.keys(obj)) if (!(PLAN_CODES as readonly string[]).includes(k)) throw new ParamError(`${name}: unknown plan ${JSON.stringify(k)} (plans: ${PLAN_CODES.join(', ')})`);
  const out = {} as PerPlan;
  for (const k of PLAN_CODES) {
    if (!(k in obj)) throw new ParamError(`${name}: missing plan ${k}`);
    out[k] = checkNumber(`${name}.${k}`, obj[k], b);
  }
  return out;
}

function mergeBusiness(base: BusinessParams, patch: Record<string, unknown>, label: (k: string) => string): BusinessParams {
  const out: BusinessParams = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (!(k in BOUNDS)) throw new ParamError(`${label(k)}: unknown parameter`);
    const key = k as keyof BusinessParams;
    if (key === 'planMix' || key === 'voluntaryChurn') (out as any)[key] = checkPerPlan(label(k), v, BOUNDS[key]);
    else (out as any)[key] = checkNumber(label(k), v, BOUNDS[key]);
  }
  return out;
}

function checkConsistency(b: BusinessParams) {
  const mix = PLAN_CODES.reduce((a, k) => a + b.planMix[k], 0);
  if (mix <= 0) throw new ParamError('plan-mix: at least one plan needs a positive share');
  if (b.returnWithin12Months < b.returnWithin3Months) throw new ParamError('return-within-12-months: must be at least return-within-3-months');
  if (b.returnWithin3Months > 0 && b.returnWithin12Months >= b.returnWithin3Months * 4) {
    throw new ParamError('return-within-12-months: must be below 4 × return-within-3-months (returns slow down over time)');
  }
}

export const PROFILE_DIR = path.resolve(import.meta.dirname, '..', 'profiles');

/** A profile file's parameters (its `description` left out). */
function readProfile(file: string, asked: string): Record<string, unknown> {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch {
    const known = fs.readdirSync(PROFILE_DIR).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
    throw new ParamError(`--profile: no profile ${JSON.stringify(asked)} (known: ${known.join(', ')}; or a path to a .json file)`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e: any) { throw new ParamError(`--profile ${file}: not valid JSON (${e.message})`); }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ParamError(`--profile ${file}: expected a JSON object`);
  const { description: _d, ...rest } = json as Record<string, unknown>;
  return rest;
}

/**
 * The defaults: etl/profiles/default.json, the one place they are written (DESIGN.md's figures, its `description`
 * says how they were chosen). It must give every parameter; other profiles and flags override single values.
 */
export const DEFAULT_BUSINESS: BusinessParams = (() => {
  const file = path.join(PROFILE_DIR, 'default.json');
  const b = mergeBusiness({} as BusinessParams, readProfile(file, 'default'), (k) => `${file}: ${k}`);
  const missing = Object.keys(BOUNDS).filter((k) => !(k in b));
  if (missing.length) throw new ParamError(`${file}: missing ${missing.join(', ')} (the default profile gives every parameter)`);
  checkConsistency(b);
  return b;
})();

/** A profile by name (etl/profiles/<name>.json) or by path, over the defaults. Its keys are BusinessParams keys (camelCase). */
export function loadProfile(nameOrPath: string): { name: string; business: BusinessParams } {
  const byName = /^[a-z][a-z0-9-]*$/.test(nameOrPath);
  const file = byName ? path.join(PROFILE_DIR, `${nameOrPath}.json`) : path.resolve(nameOrPath);
  const business = mergeBusiness(DEFAULT_BUSINESS, readProfile(file, nameOrPath), (k) => `--profile ${path.basename(file)}: ${k}`);
  checkConsistency(business);
  return { name: byName ? nameOrPath : file, business };
}

const RUN_FLAGS = ['users', 'months', 'seed', 'end', 'scale', 'profile', 'batch-size', 'reset', 'quiet', 'summary', 'help'];

export const USAGE = `usage: npm run simulate -- [--scale small|default|large] [--users N] [--months M] [--seed S]
                        [--end YYYY-MM-DD] [--profile default|industry|file.json] [--reset] [--quiet] [--summary]
                        [--<parameter> value ...]
  --scale      preset: small (2,000 users), default (50,000), large (1,000,000); 12 months each
  --users      customers in the history (overrides the preset)
  --months     length of the history window, ending at --end (1-60)
  --seed       integer seed; the same seed, parameters and --end give identical data
  --end        last day of the window (exclusive, 00:00 UTC); default today
  --profile    business parameters (etl/profiles/<name>.json or a path); flags override single values
  --reset      remove the existing simulated history (simulated users, their data, simulated visits) first
  --batch-size customers generated and written per batch (memory bound), default 2,000
  --summary    only print the validation summary of the existing simulated history
business parameters (defaults: etl/profiles/default.json, from DESIGN.md; rates are fractions):
${Object.keys(DEFAULT_BUSINESS).map((k) => `  --${kebab(k)} ${JSON.stringify((DEFAULT_BUSINESS as any)[k]).replace(/"/g, '')}`).join('\n')}
  (per-plan values: --plan-mix standard_with_ads=0.55,standard=0.3,premium=0.15)`;

export function todayUtc(now = new Date()): string {
  return now.toISOString().slice(0, 10);
}

/** Parse CLI arguments. Throws ParamError naming the flag; `help: true` when --help was given. */
export function parseArgs(argv: string[], today = todayUtc()): RunParams & { help: boolean; summary: boolean } {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(a);
    if (!m) throw new ParamError(`unexpected argument ${JSON.stringify(a)} (flags look like --users 50000)`);
    const name = m[1];
    if (flags.has(name)) throw new ParamError(`--${name}: given twice`);
    const isBool = name === 'reset' || name === 'quiet' || name === 'summary' || name === 'help';
    if (isBool) {
      if (m[2] !== undefined) throw new ParamError(`--${name}: takes no value`);
      flags.set(name, true);
      continue;
    }
    const known = RUN_FLAGS.includes(name) || camel(name) in DEFAULT_BUSINESS;
    if (!known) throw new ParamError(`--${name}: unknown flag (see --help)`);
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || /^--[a-z]/.test(value)) throw new ParamError(`--${name}: needs a value`);
      i++;
    }
    flags.set(name, value);
  }
  const str = (k: string) => flags.get(k) as string | undefined;

  const scaleText = str('scale') ?? 'default';
  if (!(scaleText in SCALES)) throw new ParamError(`--scale: must be small, default or large, got ${JSON.stringify(scaleText)}`);
  const scale = scaleText as Scale;
  const profile = loadProfile(str('profile') ?? 'default');
  const patch: Record<string, string> = {};
  for (const [k, v] of flags) if (!RUN_FLAGS.includes(k)) patch[camel(k)] = v as string;
  const business = mergeBusiness(profile.business, patch, (k) => `--${kebab(k)}`);
  checkConsistency(business);

  const users = str('users') !== undefined ? checkNumber('--users', str('users'), { min: 1, max: 20_000_000, integer: true }) : SCALES[scale].users;
  const months = str('months') !== undefined ? checkNumber('--months', str('months'), { min: 1, max: 60, integer: true }) : SCALES[scale].months;
  const seed = str('seed') !== undefined ? checkNumber('--seed', str('seed'), { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }) : 42;
  const batchSize = str('batch-size') !== undefined ? checkNumber('--batch-size', str('batch-size'), { min: 1, max: 100_000, integer: true }) : 2_000;
  const end = str('end') ?? today;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(end) || Number.isNaN(Date.parse(end + 'T00:00:00Z')) || new Date(end + 'T00:00:00Z').toISOString().slice(0, 10) !== end) {
    throw new ParamError(`--end: expected a date YYYY-MM-DD, got ${JSON.stringify(end)}`);
  }
  if (end < '2000-01-01' || end > '2100-01-01') throw new ParamError(`--end: must be between 2000-01-01 and 2100-01-01, got ${end}`);
  return {
    users, months, seed, end, scale, profile: profile.name, batchSize, reset: flags.has('reset'), quiet: flags.has('quiet'),
    business, help: flags.has('help'), summary: flags.has('summary'),
  };
}

/** Defaults for programmatic use (the demo step, tests): the preset, overridden by `over`. */
export function runParams(over: Partial<Omit<RunParams, 'business'>> & { business?: Partial<BusinessParams> } = {}): RunParams {
  const scale = over.scale ?? 'default';
  const profile = loadProfile(over.profile ?? 'default');
  const business = { ...profile.business, ...(over.business ?? {}) };
  checkConsistency(business);
  return {
    users: over.users ?? SCALES[scale].users, months: over.months ?? SCALES[scale].months, seed: over.seed ?? 42,
    end: over.end ?? todayUtc(), scale, profile: profile.name, batchSize: over.batchSize ?? 2_000,
    reset: over.reset ?? false, quiet: over.quiet ?? false, business,
  };
}
