// The test runner itself (test/run.ts) on fixture files (test/fixtures/runner): counts come from the tests each file
// declared, not from uvu's totals — a skipped test cannot hide a failure, .only is refused, a test declared after
// .run() counts as failed, skipped tests are named. The nested runner uses this run's PostgreSQL server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { serverUrl } from './helpers/db.ts';

const root = path.resolve(import.meta.dirname, '..');

function runRunner(...names: string[]): Promise<{ code: number | null; out: string; last: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/run.ts', ...names], {
      cwd: root,
      env: { ...process.env, MARQUEE_TEST_DIRS: 'test/fixtures/runner', TEST_DATABASE_URL: serverUrl(), TEST_CONCURRENCY: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out, last: out.trimEnd().split('\n').at(-1)! }));
  });
}

const line = (out: string, file: string) => out.split('\n').find((l) => l.includes(`test/fixtures/runner/${file}.test.ts`)) ?? '';

test('every fixture: failures counted directly, .only refused, late tests failed, skipped named', async () => {
  const r = await runRunner();
  assert.is(r.last, '6 passed, 4 failed, 1 skipped', r.out);
  assert.is(r.code, 1);
  assert.match(line(r.out, 'pass'), /^ok {3}\S+ {2}2 passed, 0 failed /);
  assert.match(line(r.out, 'fail'), /^FAIL \S+ {2}1 passed, 1 failed /);
  assert.match(line(r.out, 'skip'), /^ok {3}\S+ {2}1 passed, 0 failed, 1 skipped /);
  assert.match(line(r.out, 'only'), /^FAIL \S+ {2}0 passed, 2 failed .*test\.only is refused/);
  assert.match(line(r.out, 'late'), /^FAIL \S+ {2}2 passed, 1 failed .*declared after \.run\(\)/);
  assert.ok(r.out.includes('skipped: skipped on purpose'), r.out);
  assert.ok(r.out.includes('failed: declared after run  [declared after .run(): never runs]'), r.out);
  assert.ok(r.out.includes('failed: fails on purpose'), r.out);
});

test('a skipped test does not hide a failing one (uvu\'s Total leaves skipped tests out)', async () => {
  const r = await runRunner('skip', 'fail');
  assert.is(r.last, '2 passed, 1 failed, 1 skipped', r.out);
  assert.is(r.code, 1);
});

test('passing and skipped files only: exit 0', async () => {
  const r = await runRunner('pass', 'skip');
  assert.is(r.last, '3 passed, 0 failed, 1 skipped', r.out);
  assert.is(r.code, 0);
});

test.run();
