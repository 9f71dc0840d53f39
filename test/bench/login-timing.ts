// Does a sign-in answer reveal whether the email exists (or how its password is stored)? Times POST /login for a
// wrong password on an argon2id account, on a legacy SHA-256 account, and for an unknown email, interleaved, each
// against a fresh account and IP so throttling stays out of the way. The ratios against the wrong-password baseline
// should be ≈ 1.00. Also times a successful sign-in (argon2 verify + session + known-device rows).
import { createHash } from 'node:crypto';
import sql from 'sql-template-tag';
import { benchDatabase, fmt, record } from './lib.ts';
import { createApp } from '../../server/app.ts';
import { hashPassword } from '../../server/auth/password.ts';

const N = Number(process.env.BENCH_N ?? 40);
const bench = await benchDatabase('login_timing');
try {
  const app = createApp({ db: bench.db, log: () => {} });
  const password = 'the right password 1';
  const hash = await hashPassword(password);
  for (let i = 0; i < N; i++) {
    await bench.db.query(sql`INSERT INTO users (email, display_name, password_hash) VALUES (${`argon${i}@bench.example`}, 'A', ${hash})`);
    await bench.db.query(sql`INSERT INTO users (email, display_name, password_hash) VALUES (${`legacy${i}@bench.example`}, 'L',
      ${'sha256$' + createHash('sha256').update(password).digest('hex')})`);
  }
  const login = async (email: string, pw: string, ip: string) => {
    const t0 = performance.now();
    const res = await app.request('/login', { method: 'POST',
      headers: { Origin: 'http://localhost', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email, password: pw }).toString() }, { incoming: { socket: { remoteAddress: ip } } });
    await res.arrayBuffer();
    return { ms: performance.now() - t0, status: res.status };
  };
  // Warm up (argon2 dummy hash, JIT, pool).
  for (let i = 0; i < 3; i++) await login(`warm${i}@bench.example`, 'x', `10.9.9.${i}`);
  const cases = {
    'wrong password, argon2id account': (i: number) => login(`argon${i}@bench.example`, 'wrong password!', `10.1.${i}.1`),
    'wrong password, legacy SHA-256 account': (i: number) => login(`legacy${i}@bench.example`, 'wrong password!', `10.2.${i}.1`),
    'unknown email': (i: number) => login(`nobody${i}@bench.example`, 'wrong password!', `10.3.${i}.1`),
  } as const;
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < N; i++) {
    for (const [name, fn] of Object.entries(cases)) {
      const r = await fn(i);
      if (r.status !== 401) throw new Error(`${name}: expected 401, got ${r.status}`);
      samples[name].push(r.ms);
    }
  }
  const success: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await login(`argon${i}@bench.example`, password, `10.4.${i}.1`);
    if (r.status !== 303) throw new Error(`success: got ${r.status}`);
    success.push(r.ms);
  }
  const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const base = q(samples['wrong password, argon2id account'], 0.5);
  console.log(`POST /login, ${N} each, interleaved (median / p90 ms, median ratio to the wrong-password baseline)`);
  for (const [name, xs] of Object.entries(samples)) {
    console.log(`  ${name.padEnd(40)} ${fmt(q(xs, 0.5)).padStart(6)} / ${fmt(q(xs, 0.9)).padStart(6)}   ×${(q(xs, 0.5) / base).toFixed(2)}`);
    if (xs !== samples['wrong password, argon2id account']) {
      record(`POST /login, ${name} (median)`, q(xs, 0.5), 'ms', { baseline: 'wrong password, argon2id', baselineValue: base,
        target: 'ratio 0.8–1.25×', met: q(xs, 0.5) / base >= 0.8 && q(xs, 0.5) / base <= 1.25 });
    }
  }
  console.log(`  ${'successful sign-in (rehash-free)'.padEnd(40)} ${fmt(q(success, 0.5)).padStart(6)} / ${fmt(q(success, 0.9)).padStart(6)}   ×${(q(success, 0.5) / base).toFixed(2)}`);
  record('POST /login, successful sign-in (median)', q(success, 0.5), 'ms', { baseline: 'wrong password, argon2id', baselineValue: base });
} finally {
  await bench.close();
}
