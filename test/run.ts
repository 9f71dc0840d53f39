// npm test runner: one PostgreSQL for the whole run (embedded, or TEST_DATABASE_URL / DATABASE_URL), a migrated
// template database built once, then every test file in its own process (each clones the template), a few at a time.
// A file that hangs (a leaked handle) is killed at its timeout and counted as failed. Ends with "N passed, N failed".
// Counts come from test/helpers/uvu-tracked.ts (loaded in place of 'uvu' for every test file), not from uvu's totals:
// every declared test either passed or failed; one that never ran (declared after .run(), cut short) failed; a file
// using .only is refused (its tests count as failed); skipped tests are listed by name.
// MARQUEE_TEST_DIRS (comma-separated, default "test,test/e2e") says where test files are found (the runner's own
// test points it at test/fixtures/runner).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEmbedded } from '../server/db/embedded.ts';
import { createDb, withConnection, withDatabase, ident } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { ensureBuilt } from '../views/build.ts';
import type { FileReport } from './helpers/uvu-tracked.ts';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const concurrency = Number(process.env.TEST_CONCURRENCY ?? 3);
const timeoutMs = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 300_000);

function discover(): string[] {
  const dirs = (process.env.MARQUEE_TEST_DIRS ?? 'test,test/e2e').split(',').filter(Boolean);
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

  type Result = { file: string; passed: number; failed: number; skipped: number; ms: number; output: string; note?: string;
    skippedNames: string[]; failedNames: string[] };
  const reportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-test-reports-'));
  const results: Result[] = [];
  const queue = [...files];
  const runOne = (file: string) => new Promise<Result>((resolve) => {
    const t0 = Date.now();
    const reportFile = path.join(reportDir, file.replace(/[^a-zA-Z0-9]+/g, '_') + '.json');
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/helpers/uvu-track.mjs', file], {
      cwd: root,
      env: { ...process.env, MARQUEE_TEST_REPORT: reportFile, MARQUEE_TEST_SERVER_URL: serverUrl, MARQUEE_TEST_TEMPLATE: template, MARQUEE_TEST_RUN_ID: runId, FORCE_COLOR: '0', NO_COLOR: '1' },
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
      let report: FileReport | undefined;
      try { report = JSON.parse(fs.readFileSync(reportFile, 'utf8')); } catch { /* killed, or crashed before exit */ }
      const label = (t: { suite: string; name: string }) => (t.suite ? `${t.suite} > ` : '') + t.name;
      const tests = report?.tests ?? [];
      const onlyUsed = tests.some((t) => t.only);
      const passedTests = onlyUsed ? [] : tests.filter((t) => t.state === 'passed');
      const failedTests = tests.filter((t) => !passedTests.includes(t));
      const failedNames = failedTests.map((t) => label(t) + (
        onlyUsed ? (t.only ? '  [.only is refused: it hides the other tests]' : '  [not run: .only elsewhere in the file]')
        : t.state === 'failed' ? '' : t.state === 'declared' ? '  [declared after .run(): never runs]' : '  [never ran]'));
      const skippedNames = (report?.skipped ?? []).map(label);
      let passed = passedTests.length, failed = failedTests.length;
      if (onlyUsed) note = 'test.only is refused';
      else if (tests.some((t) => t.state === 'declared')) note = 'tests declared after .run()';
      if (!report) { failed = Math.max(failed, 1); note ??= `no test report (exit code ${code})`; }
      if (code !== 0 && failed === 0) { failed = 1; note ??= `exited with code ${code}`; }
      if (report && tests.length === 0 && code === 0) { failed = 1; note = 'ran no test'; }
      resolve({ file, passed, failed, skipped: skippedNames.length, ms: Date.now() - t0, output: clean, note, skippedNames, failedNames });
    });
  });
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const r = await runOne(f);
      results.push(r);
      const mark = r.failed ? 'FAIL' : 'ok  ';
      console.log(`${mark} ${r.file}  ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}  ` +
        `(${(r.ms / 1000).toFixed(1)} s)${r.note ? `  [${r.note}]` : ''}`);
      for (const n of r.skippedNames) console.log(`     skipped: ${n}`);
      for (const n of r.failedNames) console.log(`     failed: ${n}`);
      if (r.failed || process.env.TEST_VERBOSE) console.log(r.output.split('\n').map((l) => '    ' + l).join('\n'));
    }
  }));
  const passed = results.reduce((a, r) => a + r.passed, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const skipped = results.reduce((a, r) => a + r.skipped, 0);
  console.log(`\n${results.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  exitCode = failed ? 1 : 0;
  fs.rmSync(reportDir, { recursive: true, force: true });
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
