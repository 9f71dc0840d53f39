// One CSRF guard for the whole app, in front of every route, for every state-changing method (POST/PUT/PATCH/DELETE):
// - hono/csrf: a form-type (or body-less) request must carry our Origin, or Sec-Fetch-Site: same-origin.
// - Any request carrying a foreign Origin or Sec-Fetch-Site: cross-site/same-site is refused, whatever its type.
// - JSON routes (/api/*) accept only application/json bodies: a cross-site page cannot send that content type
//   without a CORS preflight, which we never grant. (JSON without any Origin is not a browser: no CSRF risk.)
import type { Context, MiddlewareHandler } from 'hono';
import { csrf } from 'hono/csrf';
import type { Env } from '../types.ts';
import { HttpError, isApi } from '../errors.ts';
import { requestHost } from './host.ts';

const SAFE = /^(GET|HEAD|OPTIONS)$/;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/;

/**
 * Whether Origin is one of our public origins (deps.publicOrigins: MARQUEE_PUBLIC_URL or the listen address; the Host
 * was checked against them by hostGuard), or the request host's https:// twin when served behind TLS (secureCookies).
 * Never "whatever the Host header says": DNS rebinding controls that (auth/origins.ts).
 */
export function isOwnOrigin(origin: string, c: Context<Env>): boolean {
  const deps = c.get('deps');
  return deps.publicOrigins.isOwnOrigin(origin, requestHost(c), deps.config.secureCookies);
}

const formCheck = csrf({ origin: (origin, c) => isOwnOrigin(origin, c as Context<Env>) });
const refuse = () => new HttpError(403, 'Cross-site request refused: changes must be made from this site\'s own pages');

export const csrfGuard: MiddlewareHandler<Env> = async (c, next) => {
  if (SAFE.test(c.req.method)) return next();
  if (isApi(c.req.path)) {
    const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const length = c.req.header('content-length');
    const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
    if ((hasBody || type) && !JSON_TYPE.test(type)) {
      throw new HttpError(415, `${c.req.path} accepts only application/json bodies (got ${type || 'no content type'})`);
    }
  }
  const origin = c.req.header('origin');
  if (origin !== undefined && !isOwnOrigin(origin, c)) throw refuse();
  const site = c.req.header('sec-fetch-site');
  if (origin === undefined && (site === 'cross-site' || site === 'same-site')) throw refuse();
  try {
    await formCheck(c, async () => {});
  } catch {
    throw refuse();
  }
  return next();
};
