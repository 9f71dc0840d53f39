// A real HTTP server over createApp for browser and load tests (port 0, closed after the suite).
import type { Server } from 'node:http';
import { createApp } from '../../server/app.ts';
import { listen } from '../../server/serve.ts';
import type { Deps } from '../../server/types.ts';

export async function startTestServer(deps: Deps): Promise<{ url: string; close(): Promise<void>; server: Server }> {
  const app = createApp({ log: () => {}, ...deps });
  const { server, url } = await listen(app.fetch, 0, '127.0.0.1');
  return {
    url: url.replace(/\/$/, ''),
    server,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
