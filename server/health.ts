// /healthz: the process is alive. /readyz: the database answers within 1 s and its schema is current; with a read
// replica, also its last seen state (never a reason to be unready: reports then read from the primary).
import { Hono } from 'hono';
import type { Env } from './types.ts';
import { requestLabel } from './request-id.ts';
import { appliedVersion, latestVersion } from './db/migrate.ts';
import { RETRY_AFTER_S } from './errors.ts';

const expected = latestVersion();

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

export const health = new Hono<Env>()
  .get('/healthz', (c) => c.json({ status: 'ok' }))
  .get('/readyz', async (c) => {
    c.header('Cache-Control', 'no-store');
    const replica = c.get('deps').readDb.replica?.state();
    try {
      const version = await within(1000, appliedVersion(c.get('deps').db));
      if (version < expected) return c.json({ status: 'migrating', schema: version, expected, ...(replica && { replica }) }, 503);
      return c.json({ status: 'ready', schema: version, ...(replica && { replica }) });
    } catch (e: any) {
      // The probe is public: the driver's message (host, port, user) goes to the operator's log, not to the client.
      c.get('deps').log(`[readyz] request ${requestLabel(c)}: database unavailable: ${e?.message ?? e}`);
      c.header('Retry-After', String(RETRY_AFTER_S));
      return c.json({ status: 'database unavailable', requestId: c.get('requestId') }, 503);
    }
  });
