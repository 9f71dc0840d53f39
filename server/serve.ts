// Listening and graceful shutdown, shared by main.ts and the shutdown test: on SIGTERM/SIGINT stop accepting,
// let in-flight requests finish, then run the shutdown steps in order (jobs, pool, embedded database).
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';

type Fetch = (req: Request, ...rest: any[]) => Response | Promise<Response>;

export async function listen(fetch: Fetch, port: number, host: string): Promise<{ server: Server; url: string }> {
  const server = serve({ fetch, port, hostname: host }) as Server;
  await new Promise<void>((resolve, reject) => { server.once('listening', resolve); server.once('error', reject); });
  const addr = server.address() as { port: number };
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}/` };
}

export function shutdownOnSignals(server: Server, steps: Array<() => Promise<unknown>>, log = (l: string) => console.log(l),
  graceMs = 30_000) {
  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log(`${signal}: shutting down (finishing in-flight requests)`);
    const force = setTimeout(() => { console.error(`shutdown took over ${graceMs / 1000} s; exiting`); process.exit(1); }, graceMs);
    force.unref();
    await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeIdleConnections(); });
    let code = 0;
    for (const step of steps) {
      try { await step(); } catch (e: any) { code = 1; console.error(`shutdown step failed: ${e.message}`); }
    }
    log('stopped');
    process.exit(code);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
