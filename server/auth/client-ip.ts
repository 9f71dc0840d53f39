// The client's address, for the audit log and per-IP throttling. Behind a reverse proxy set MARQUEE_TRUST_PROXY=1 so
// the right-most X-Forwarded-For entry (the one our proxy appended) is used; otherwise the socket address. In-process
// requests (app.request in tests) have no socket: they may pass one as the env argument, else the address is unknown.
import type { Context } from 'hono';
import { isIP } from 'node:net';

export function clientIp(c: Context<any>): string | null {
  if (c.get('deps')?.config.trustProxy) {
    const forwarded = c.req.header('x-forwarded-for')?.split(',').map((s) => s.trim()).filter(Boolean).at(-1);
    if (forwarded && isIP(forwarded)) return forwarded;
  }
  const env = c.env as any;
  const addr: unknown = (env?.server ?? env)?.incoming?.socket?.remoteAddress;
  if (typeof addr !== 'string') return null;
  const plain = addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
  return isIP(plain) ? plain : null;
}
