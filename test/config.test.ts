// Configuration: one typed object read from the environment, every problem named, and the README's table true.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadConfig, defaultConfig, ConfigError, VARIABLES } from '../server/config.ts';

const root = path.resolve(import.meta.dirname, '..');

test('defaults: what the README documents', () => {
  const c = loadConfig({});
  assert.is(c.port, 3000);
  assert.is(c.host, '127.0.0.1');
  assert.is(c.databaseUrl, undefined);
  assert.is(c.dataDir, path.resolve('var'));
  assert.is(c.demo, true);
  assert.is(c.poolSize, 20);
  assert.is(c.secureCookies, false);
  assert.is(c.sessionIdleMs, 30 * 60_000);
  assert.is(c.sessionMaxMs, 12 * 3_600_000);
  assert.is(c.signupsPerIpHour, 20);
  assert.is(c.csvStreams, 4);
  assert.is(c.reportCache, true);
  assert.is(c.martWorkMem, '256MB');
  assert.equal(defaultConfig({ port: 1 }).port, 1);
});

test('values are parsed and typed; empty means the default', () => {
  const c = loadConfig({ PORT: '0', MARQUEE_DEMO: '0', MARQUEE_SECURE_COOKIES: '1', MARQUEE_SESSION_IDLE_MINUTES: '1.5',
    MARQUEE_SESSION_MAX_HOURS: '2', DATABASE_URL: 'postgres://u@h:5/db', MARQUEE_DATA_DIR: '/tmp/x', HOST: '' });
  assert.is(c.port, 0);
  assert.is(c.demo, false);
  assert.is(c.secureCookies, true);
  assert.is(c.sessionIdleMs, 90_000);
  assert.is(c.sessionMaxMs, 7_200_000);
  assert.is(c.databaseUrl, 'postgres://u@h:5/db');
  assert.is(c.dataDir, '/tmp/x');
  assert.is(c.host, '127.0.0.1');
});

test('every bad value is reported at once, naming the variable and the value (a password never)', () => {
  let err: unknown;
  try {
    loadConfig({ PORT: 'abc', MARQUEE_POOL_SIZE: '0', MARQUEE_DEMO: 'yes', MARQUEE_MART_WORK_MEM: 'lots',
      DATABASE_URL: 'mysql://root:hunter2@db/x', MARQUEE_SESSION_IDLE_MINUTES: '-5' });
  } catch (e) { err = e; }
  assert.instance(err, ConfigError);
  const problems = (err as ConfigError).problems;
  assert.is(problems.length, 6, problems.join('\n'));
  assert.ok(problems.some((p) => p === 'PORT must be an integer 0-65535, got "abc"'), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('MARQUEE_POOL_SIZE must be an integer 1-1000')));
  assert.ok(problems.some((p) => p === 'MARQUEE_DEMO must be 0 or 1, got "yes"'));
  assert.ok(problems.some((p) => p.startsWith('MARQUEE_MART_WORK_MEM must be a size')));
  assert.ok(problems.some((p) => p.startsWith('MARQUEE_SESSION_IDLE_MINUTES must be a positive number')));
  const dbLine = problems.find((p) => p.startsWith('DATABASE_URL'))!;
  assert.ok(dbLine.includes('postgres://'), dbLine);
  assert.not.ok(dbLine.includes('hunter2'), 'the password is not printed');
});

test('npm start refuses a bad variable before touching anything: exit 2, the variable named', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root, encoding: 'utf8', env: { ...process.env, PORT: '99999', MARQUEE_DEMO: 'maybe', DATABASE_URL: '' }, timeout: 60_000 });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /PORT must be an integer 0-65535, got "99999"/);
  assert.match(r.stderr, /MARQUEE_DEMO must be 0 or 1, got "maybe"/);
});

test('the README configuration table lists exactly the variables server/config.ts reads', () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration (environment)'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| variable |')));
  const documented = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
  assert.equal(documented, Object.keys(VARIABLES).sort());
});

test('no module but server/config.ts reads process.env (entry points pass it to configOrExit)', () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.ts') && !f.endsWith(path.join('server', 'config.ts'))) {
        fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
          if (/process\.env\b/.test(line) && !/configOrExit\(process\.env/.test(line) && !/\.\.\.process\.env/.test(line)) {
            offenders.push(`${path.relative(root, f)}:${i + 1}: ${line.trim()}`);
          }
        });
      }
    }
  };
  for (const d of ['server', 'etl', 'views']) walk(path.join(root, d));
  // the simulator's worker and views/build.ts' esbuild define are not configuration
  const allowed = offenders.filter((o) => !/^views\/build\.ts:.*NODE_ENV/.test(o));
  assert.equal(allowed, []);
});

test.run();
