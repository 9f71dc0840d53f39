// argon2id at (at least) the OWASP minimum: m = 19 MiB, t = 2, p = 1.
import { hash, verify } from '@node-rs/argon2';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

const ARGON2ID = 2; // Algorithm.Argon2id (a const enum, not importable under isolatedModules)
export const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS as any);
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try { return await verify(stored, password); } catch { return false; }
}

/** Users imported from the original system keep 'sha256$<64 hex>' until their first successful login rehashes it. */
export const LEGACY_PREFIX = 'sha256$';
export const isLegacyHash = (stored: string) => stored.startsWith(LEGACY_PREFIX);

export function legacySha256Hash(hex: string): string {
  const h = hex.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(h)) throw new Error('a SHA-256 hash is 64 hex digits');
  return LEGACY_PREFIX + h;
}

/** True when the stored argon2 hash is weaker than ARGON2_OPTIONS (or a legacy hash): rehash on the next login. */
export function needsRehash(stored: string): boolean {
  if (isLegacyHash(stored)) return true;
  const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(stored);
  if (!m) return true;
  return Number(m[1]) < ARGON2_OPTIONS.memoryCost || Number(m[2]) < ARGON2_OPTIONS.timeCost;
}

let dummy: Promise<string> | undefined;
/** A hash of a random password, verified when there is no real one, so every failed login costs one argon2 verify. */
const dummyHash = () => (dummy ??= hashPassword(randomBytes(18).toString('base64url')));

/**
 * Checks a password against a stored hash (argon2id or legacy SHA-256) or against nothing (unknown email, account
 * without a password). Every path runs exactly one argon2id verification, so the answer time does not tell an
 * attacker whether the email exists or how its password is stored.
 */
export async function checkPassword(stored: string | null | undefined, password: string): Promise<boolean> {
  if (stored && !isLegacyHash(stored)) return verifyPassword(stored, password);
  const decoy = verifyPassword(await dummyHash(), password);
  if (!stored) { await decoy; return false; }
  const expected = Buffer.from(stored.slice(LEGACY_PREFIX.length), 'hex');
  const actual = createHash('sha256').update(password, 'utf8').digest();
  await decoy;
  return expected.length === 32 && timingSafeEqual(expected, actual);
}

let common: Set<string> | undefined;
/**
 * The 10,000 most common passwords (SecLists, shipped as common-passwords.txt; lines starting with "# " are comments),
 * lower-cased, read once. OWASP ASVS 2.1.7: a password set by a user is checked against breached/common ones.
 */
export function commonPasswords(): Set<string> {
  if (!common) {
    const text = readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8');
    common = new Set(text.split(/\r?\n/).filter((l) => l && !l.startsWith('# ')).map((l) => l.toLowerCase()));
  }
  return common;
}

export const isCommonPassword = (password: string) => commonPasswords().has(password.toLowerCase());

/**
 * Password rules for every password a person chooses (sign-up, change, admin create/reset with a password, the users
 * CLI, MARQUEE_ADMIN_PASSWORD): length, not a common password, not the email, not trivially weak.
 */
export function passwordProblem(password: string, email?: string): string | undefined {
  if (password.length < 10) return 'Use at least 10 characters';
  if (password.length > 200) return 'Use at most 200 characters';
  if (isCommonPassword(password)) return 'This is one of the 10,000 most common passwords: choose another';
  if (email && password.toLowerCase().includes(email.toLowerCase().split('@')[0]) && email.split('@')[0].length >= 4) {
    return 'Do not use your email address in the password';
  }
  if (new Set(password).size < 4) return 'Use more different characters';
  return undefined;
}
