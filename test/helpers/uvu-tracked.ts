// What a test file under test/run.ts imports as 'uvu' (test/helpers/uvu-hooks.mjs redirects it here): the real uvu,
// plus a record of every test the file declares and what became of it, written at exit as JSON to
// $MARQUEE_TEST_REPORT. The runner counts from this record instead of uvu's totals (which leave out skipped tests and,
// under .only, every other test), so a test that was declared but never ran — declared after .run(), left out by
// .only, or cut short by a failing hook — counts as failed, and skipped tests are listed by name.
import fs from 'node:fs';
import * as uvu from 'uvu';

export type TestState = 'declared' | 'scheduled' | 'running' | 'passed' | 'failed';
export interface TestRecord { suite: string; name: string; state: TestState; only: boolean; error?: string }
export interface FileReport { tests: TestRecord[]; skipped: { suite: string; name: string }[] }

const report: FileReport = { tests: [], skipped: [] };

function track<T>(real: uvu.Test<T>, suiteName: string): uvu.Test<T> {
  let pending: TestRecord[] = [];
  const declare = (only: boolean) => (name: string, fn: uvu.Callback<T>) => {
    const rec: TestRecord = { suite: suiteName, name, state: 'declared', only };
    report.tests.push(rec);
    pending.push(rec);
    const handler: uvu.Callback<T> = async (ctx) => {
      rec.state = 'running';
      try {
        await fn(ctx);
        rec.state = 'passed';
      } catch (e: any) {
        rec.state = 'failed';
        rec.error = String(e?.message ?? e).split('\n')[0];
        throw e;
      }
    };
    (only ? real.only : real)(name, handler);
  };
  const t = declare(false) as uvu.Test<T>;
  t.only = declare(true);
  t.skip = (name?: string, fn?: uvu.Callback<T>) => {
    report.skipped.push({ suite: suiteName, name: name ?? '(unnamed)' });
    real.skip(name, fn);
  };
  t.before = real.before;
  t.after = real.after;
  t.run = () => {
    for (const rec of pending) rec.state = 'scheduled';
    pending = [];
    real.run();
  };
  return t;
}

export const test = track(uvu.test, '');
export const suite = <T = Record<string, any>>(title?: string, context?: T): uvu.Test<T> =>
  track(uvu.suite<T>(title, context), title ?? '');
export const exec = uvu.exec;

process.on('exit', () => {
  const file = process.env.MARQUEE_TEST_REPORT;
  if (file) fs.writeFileSync(file, JSON.stringify(report));
});
