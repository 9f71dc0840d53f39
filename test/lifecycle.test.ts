// The embedded database's lifecycle, /readyz across a database outage, and graceful shutdown of a real process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { startEmbedded } from '../server/db/embedded.ts';
import { createDb, withConnection } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { createApp } from '../server/app.ts';
import { waitFor } from './helpers/sync.ts';

/**
 * GET /readyz on a fresh connection. spawnSync blocks this process's event loop for seconds, longer than the server's
 * keep-alive timeout: a pooled fetch connection closed meanwhile would be reused before its close is seen ("other
 * side closed"), so these probes never reuse one.
 */
function readyz(base: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(`${base}readyz`, { agent: false }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject);
  });
}

const root = path.resolve(import.meta.dirname, '..');
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-life-')); fs.chmodSync(d, 0o711); return d; };
const postgresFor = (dir: string) => execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
  .split('\n').filter((l) => l.includes(dir) && l.includes('postgres') && !l.includes(' ps '));

test('/readyz goes 503 at once when the database stops, and back to 200 when it returns', async () => {
  const dir = tmp();
  let pg = await startEmbedded({ dataDir: dir, fast: true, log: () => {} });
  const port = pg.port;
  const db = createDb(pg.url, { onError: () => {}, connectionTimeoutMs: 1000 });
  try {
    await migrate(db);
    const app = createApp({ db, log: () => {} });
    assert.is((await app.request('/readyz')).status, 200);
    assert.is((await app.request('/healthz')).status, 200);
    await pg.stop();
    const t0 = Date.now();
    const down = await app.request('/readyz');
    assert.is(down.status, 503);
    // README: ready means the database answers within 1 s; a refused connection must not hang the probe. The bound
    // is generous (a loaded machine is slow, not wrong): it catches a probe that waits for a pool or TCP timeout.
    assert.ok(Date.now() - t0 < 10_000, `answered in ${Date.now() - t0} ms`);
    assert.match((await down.json()).status, /unavailable/);
    assert.is((await app.request('/healthz')).status, 200, 'the process itself is still alive');
    pg = await startEmbedded({ dataDir: dir, fast: true, port, log: () => {} });
    // ready again without a restart: polled up to a generous deadline (the pool reconnects on its own)
    await waitFor('/readyz to answer 200 again', async () => (await app.request('/readyz')).status === 200, { timeoutMs: 60_000, everyMs: 100 });
  } finally {
    await db.close().catch(() => {});
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embedded start/stop leaves no postgres process; a crashed run\'s postmaster is recovered', async () => {
  const dir = tmp();
  try {
    const pg = await startEmbedded({ dataDir: dir, fast: true, log: () => {} });
    assert.ok(postgresFor(dir).length > 0, 'running while started');
    assert.is(fs.statSync(path.join(dir, 'pg-password')).mode & 0o777, 0o600);
    await pg.stop();
    assert.equal(postgresFor(dir), [], 'nothing left after stop');

    // A crash: the owning process dies by SIGKILL and leaves its postmaster running.
    const child = spawn(process.execPath, ['--import', 'tsx', '-e',
      `import { startEmbedded } from './server/db/embedded.ts'; await startEmbedded({ dataDir: ${JSON.stringify(dir)}, fast: true, log: () => {} }); console.log('up'); setInterval(() => {}, 1000);`],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d) => String(d).includes('up') && resolve()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(postgresFor(dir).length > 0, 'orphaned postmaster still running');
    const logs: string[] = [];
    const again = await startEmbedded({ dataDir: dir, fast: true, log: (l) => logs.push(l) });
    assert.ok(logs.some((l) => /left by an earlier run/.test(l)), logs.join('\n'));
    await withConnection(again.url, async (c) => assert.is((await c.one('SELECT 1 AS x'))!.x, 1));
    await again.stop();
    assert.equal(postgresFor(dir), []);

    // A stale pid file whose process is gone is removed.
    fs.writeFileSync(path.join(dir, 'pg', 'postmaster.pid'), '999999\n');
    const third = await startEmbedded({ dataDir: dir, fast: true, log: () => {} });
    await third.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM during a slow request lets it finish, then the process exits 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/slow-server.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const seen = (re: RegExp) => new Promise<RegExpExecArray>((resolve) => {
    const check = () => { const m = re.exec(out); if (m) { child.stdout.off('data', check); resolve(m); } };
    child.stdout.on('data', check);
    check();
  });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const url = (await seen(/listening (\S+)/))[1];
  const pending = fetch(url + 'slow').then(async (r) => ({ status: r.status, body: await r.text() }));
  await seen(/slow: started/); // the request is in flight (it finishes only after the signal)
  child.kill('SIGTERM');
  const res = await pending;
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(res, { status: 200, body: 'finished' });
  assert.is(code, 0);
  assert.match(out, /slow: started[\s\S]*SIGTERM: shutting down[\s\S]*slow: finishing[\s\S]*step: closed pool[\s\S]*stopped/);
  await fetch(url + 'slow').then(() => assert.unreachable('still accepting'), () => {});
});

test('npm start on a fresh data dir: migrates, creates the first admin, serves /readyz, stops cleanly', async () => {
  const dir = tmp();
  const run = (extraEnv: Record<string, string>) => new Promise<{ out: string; child: ChildProcess; url: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DATABASE_URL: '', MARQUEE_DATA_DIR: dir, PORT: '0', MARQUEE_DEMO: '0', ...extraEnv },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = /ready at (\S+)[\s\S]*Sign in as.*\n/.exec(out); if (m) resolve({ out, child, url: m[1] }); });
    child.stderr.on('data', (d) => (out += d));
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  const stop = async (child: ChildProcess) => {
    child.removeAllListeners('exit');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    return exited;
  };
  try {
    const first = await run({ MARQUEE_ADMIN_EMAIL: 'boss@example.com' });
    assert.match(first.out, /Sign in as boss@example\.com with password \S{12,}/);
    assert.is(await readyz(first.url), 200);
    // A command-line tool beside the running server shares its PostgreSQL instead of stopping it as an orphan …
    const cli = spawnSync(process.execPath, ['--import', 'tsx', 'server/auth/users-cli.ts', 'list'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, DATABASE_URL: '', MARQUEE_DATA_DIR: dir } });
    assert.is(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /boss@example\.com/);
    assert.is(await readyz(first.url), 200, 'the server still has its database');
    // … while a second server on the same data directory is refused with a clear message.
    const twin = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, DATABASE_URL: '', MARQUEE_DATA_DIR: dir, PORT: '0', MARQUEE_DEMO: '0' } });
    assert.is(twin.status, 1);
    assert.match(twin.stderr, /in use by the embedded PostgreSQL of another Marquee process/);
    assert.is(await readyz(first.url), 200);
    assert.is(await stop(first.child), 0);
    assert.equal(postgresFor(dir), []);
    const second = await run({});
    assert.not.match(second.out, /with password/, 'the password is shown once only');
    assert.match(second.out, /Sign in as boss@example\.com/);
    assert.is(await stop(second.child), 0);
    assert.equal(postgresFor(dir), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
