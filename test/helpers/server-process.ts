// A real server process (server/main.ts) for tests that need whole instances — several sharing one database, killed,
// cut off from PostgreSQL: resolved once it logs "ready at <url>"; its stdout and stderr are kept for assertions.
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface ServerProcess { child: ChildProcess; url: string; out(): string; alive(): boolean; stop(): Promise<number | null> }

/** Starts `server/main.ts` on a free port with demo data off, plus `env` (DATABASE_URL at least). */
export function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORT: '0', MARQUEE_DEMO: '0', MARQUEE_ADMIN_PASSWORD: 'fault-suite-operator-pw', ...env },
    });
    let out = '', exited = false, code: number | null = null;
    const onExit = new Promise<number | null>((r) => child.once('exit', (c) => { exited = true; code = c; r(c); }));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /ready at (\S+)/.exec(out);
      if (m) resolve({
        child, url: m[1].replace(/\/$/, ''), out: () => out, alive: () => !exited,
        async stop() { if (!exited) child.kill('SIGTERM'); return onExit; },
      });
    });
    child.stderr!.on('data', (d) => (out += d));
    void onExit.then(() => reject(new Error(`server exited ${code} before it was ready:\n${out}`)));
  });
}
