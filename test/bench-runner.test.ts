// npm run bench's result protocol (test/bench/lib.ts record) and runner (test/bench/run.ts): figures gathered into one
// table and a dated JSON file; a bench that fails or records nothing shows as failed and makes the exit code 1, while
// the others still run. See "Benchmarks" in the README. Uses stand-in benches in a temporary folder (no database).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { record, RESULTS_ENV, type BenchRow } from './bench/lib.ts';

const root = path.resolve(import.meta.dirname, '..');
const lib = path.join(root, 'test/bench/lib.ts');

test('record() appends one JSON line with the ratio to its baseline and whether the target was met', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-record-'));
  const file = path.join(dir, 'rows.jsonl');
  const saved = { f: process.env[RESULTS_ENV], n: process.env.MARQUEE_BENCH_NAME };
  try {
    process.env[RESULTS_ENV] = file;
    process.env.MARQUEE_BENCH_NAME = 'demo';
    record('p99', 120, 'ms', { baseline: 'healthz', baselineValue: 40, max: 100 });
    record('rate', 900, '/s', { min: 1100, target: '≥ 1,100 /s (33,000 in 30 s)' });
    record('plain', 3, 's');
    const rows = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as BenchRow);
    assert.equal(rows, [
      { bench: 'demo', metric: 'p99', value: 120, unit: 'ms', baseline: 'healthz', baselineValue: 40, ratio: 3, target: '≤ 100 ms', met: false },
      { bench: 'demo', metric: 'rate', value: 900, unit: '/s', target: '≥ 1,100 /s (33,000 in 30 s)', met: false },
      { bench: 'demo', metric: 'plain', value: 3, unit: 's' },
    ]);
  } finally {
    if (saved.f === undefined) delete process.env[RESULTS_ENV]; else process.env[RESULTS_ENV] = saved.f;
    if (saved.n === undefined) delete process.env.MARQUEE_BENCH_NAME; else process.env.MARQUEE_BENCH_NAME = saved.n;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the runner runs every bench, tables their figures, writes the JSON and fails for a failed or silent bench', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-runner-'));
  const benches = path.join(dir, 'benches'), results = path.join(dir, 'results');
  fs.mkdirSync(benches);
  const bench = (name: string, body: string) => fs.writeFileSync(path.join(benches, `${name}.ts`), `import { record } from ${JSON.stringify(lib)};\n${body}\n`);
  bench('a-good', `record('speed', 50, 'ms', { baseline: 'floor', baselineValue: 25, max: 60 });`);
  bench('b-crash', `record('half way', 1, 's');\nprocess.exit(3);`);
  bench('c-silent', `console.log('measured, but recorded nothing');`);
  bench('d-after', `record('still ran', 7, 'ms');`);
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'test/bench/run.ts')], {
      cwd: root, encoding: 'utf8', env: { ...process.env, MARQUEE_BENCH_SOURCES: benches, MARQUEE_BENCH_RESULTS_DIR: results },
    });
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stdout, /a-good\s+speed\s+50 ms\s+floor: 25 ms\s+2×\s+≤ 60 ms\s+yes/);
    assert.match(r.stdout, /b-crash\s+FAILED: exit 3/);
    const files = fs.readdirSync(results);
    assert.is(files.length, 1);
    assert.match(files[0], /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    const out = JSON.parse(fs.readFileSync(path.join(results, files[0]), 'utf8'));
    assert.equal(out.rows.map((x: BenchRow) => [x.bench, x.metric, x.met ?? null]), [
      ['a-good', 'speed', true],
      ['b-crash', 'half way', null],
      ['b-crash', 'FAILED: exit 3', false],
      ['c-silent', 'FAILED: recorded no figure', false],
      ['d-after', 'still ran', null],
    ]);
    assert.equal(out.benches.map((b: { name: string; exitCode: number }) => [b.name, b.exitCode]), [['a-good', 0], ['b-crash', 3], ['c-silent', 0], ['d-after', 0]]);
    assert.is(out.machine.cores, os.cpus().length);
    assert.ok(out.machine.node && out.machine.postgres && out.machine.loadBefore.length === 3, JSON.stringify(out.machine));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
