// The Host guard: a request whose Host is not one of the public origins' (origins.ts) is refused before any route
// runs, so the CSRF check (csrf.ts) can compare Origin with names that are configuration, not the request's.
import type { Context, MiddlewareHandler } from 'hono';
import type { Env } from '../types.ts';
import { errorResponse } from '../errors.ts';

/** The Host a request was sent to: its Host header, else its URL's (app.request in tests). */
export const requestHost = (c: Context<Env>): string => (c.req.header('host') ?? new URL(c.req.url).host).toLowerCase();

/** Liveness and readiness probes answer whatever Host they carry: orchestrators probe by pod IP. They reveal nothing. */
const PROBES = new Set(['/healthz', '/readyz']);

/** Refuses a request whose Host is not one of the public origins' (421 Misdirected Request, naming the Host). */
export const hostGuard: MiddlewareHandler<Env> = async (c, next) => {
  if (PROBES.has(c.req.path)) return next();
  const host = requestHost(c);
  const origins = c.get('deps').publicOrigins;
  if (origins && !origins.allowsHost(host)) {
    return errorResponse(c, 421, `This server does not answer to the host name "${host.slice(0, 200)}". Use its public address; `
      + 'operators: list every address browsers use in MARQUEE_PUBLIC_URL.');
  }
  return next();
};
