// npm test runner: one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL / DATABASE_URL), a migrated
// template database built once, then every test file in its own process (each clones the template), a few at a time.
// A file that hangs (a leaked handle) is killed at its timeout and counted as failed. Ends with "N passed, N failed".
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEmbedded } from '../server/db/embedded.ts';
import { createDb, withConnection, withDatabase, ident } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { ensureBuilt } from '../views/build.ts';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const concurrency = Number(process.env.TEST_CONCURRENCY ?? 3);
const timeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 300_000);

function discover(): string[] {
  const dirs = ['test', 'test/e2e'];
  const all = dirs.flatMap((d) => fs.existsSync(path.join(root, d))
    ? fs.readdirSync(path.join(root, d)).filter((f) => f.endsWith('.test.ts')).map((f) => path.join(d, f)) : []);
  if (!args.length) return all.sort();
  return all.filter((f) => args.some((a) => f.includes(a))).sort();
}

const files = discover();
if (!files.length) { console.error(`no test files match ${args.join(' ')}`); process.exit(1); }

// Browser tests and pages link the hashed bundles in public/build: build once here (skipped when current).
await ensureBuilt((l) => console.log(l));

const external = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
let stop = async () => {};
let serverUrl: string;
let tmpDir: string | undefined;
if (external) {
  serverUrl = external;
  console.log(`tests: PostgreSQL at ${new URL(external).host} (from ${process.env.TEST_DATABASE_URL ? 'TEST_DATABASE_URL' : 'DATABASE_URL'})`);
} else {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-test-'));
  fs.chmodSync(tmpDir, 0o711);
  const pg = await startEmbedded({ dataDir: tmpDir, fast: true, maxConnections: 300, log: () => {} });
  serverUrl = pg.url;
  stop = async () => { await pg.stop(); fs.rmSync(tmpDir!, { recursive: true, force: true }); };
  console.log(`tests: embedded PostgreSQL on port ${pg.port}`);
}

// Every database of this run is named mqt_<runId>_…, so cleanup never touches another run's databases.
const runId = randomBytes(3).toString('hex');
const template = `mqt_${runId}_template`;
const listTestDbs = () => withConnection(serverUrl, (c) =>
  c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, [`mqt_${runId}_`]))
  .then((rows) => rows.map((r) => r.datname));
const started = Date.now();
let exitCode = 1;
try {
  await withConnection(serverUrl, (c) => c.query(`CREATE DATABASE ${ident(template)}`));
  const tdb = createDb(withDatabase(serverUrl, template), { max: 2 });
  await migrate(tdb);
  await tdb.close();

  type Result = { file: string; passed: number; failed: number; skipped: number; ms: number; output: string; note?: string };
  const results: Result[] = [];
  const queue = [...files];
  const runOne = (file: string) => new Promise<Result>((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, MARQUEE_TEST_SERVER_URL: serverUrl, MARQUEE_TEST_TEMPLATE: template, MARQUEE_TEST_RUN_ID: runId, FORCE_COLOR: '0', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    let note: string | undefined;
    const timer = setTimeout(() => { note = `killed after ${timeoutMs / 1000} s`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const clean = output.replace(/\x1b\[[0-9;]*m/g, '');
      const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(clean)?.[1] ?? 0);
      const total = num('Total'), passed = num('Passed'), skipped = num('Skipped');
      let failed = total - passed - skipped;
      if (code !== 0 && failed === 0) { failed = 1; note ??= `exited with code ${code}`; }
      if (total === 0 && code === 0) { failed = 1; note = 'ran no test'; }
      resolve({ file, passed, failed, skipped, ms: Date.now() - t0, output: clean, note });
    });
  });
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const r = await runOne(f);
      results.push(r);
      const mark = r.failed ? 'FAIL' : 'ok  ';
      console.log(`${mark} ${r.file}  ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}  ` +
        `(${(r.ms / 1000).toFixed(1)} s)${r.note ? `  [${r.note}]` : ''}`);
      if (r.failed || process.env.TEST_VERBOSE) console.log(r.output.split('\n').map((l) => '    ' + l).join('\n'));
    }
  }));
  const passed = results.reduce((a, r) => a + r.passed, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const skipped = results.reduce((a, r) => a + r.skipped, 0);
  console.log(`\n${results.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  exitCode = failed ? 1 : 0;
} catch (e: any) {
  console.error(`test run failed to start: ${e.message}`);
  console.log('0 passed, 1 failed');
} finally {
  // Drop the template and whatever a killed test file left behind (only databases made during this run).
  const leftovers = await listTestDbs().catch(() => [] as string[]);
  for (const name of leftovers) {
    await withConnection(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`)).catch(() => {});
  }
  await stop();
}
process.exit(exitCode);
