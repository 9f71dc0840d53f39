// The middleware that turns a page view into a visit (what counts, and the privacy rules: server/visits.ts); it only
// hands the row to deps.visits, the VisitRecorder that writes them in batches.
import type { MiddlewareHandler } from 'hono';
import { getCookie, generateCookie } from 'hono/cookie';
import { randomUUID } from 'node:crypto';
import type { Env } from './types.ts';
import { VISITOR_COOKIE, isBot, referrerClass } from './visits.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const privacySignal = (h: (name: string) => string | undefined) => h('dnt') === '1' || h('sec-gpc') === '1';

/** Records the page view once the response is known; only when deps.visits is set (main.ts; tests opt in). */
export const recordVisits: MiddlewareHandler<Env> = async (c, next) => {
  await next();
  const recorder = c.get('deps').visits;
  if (!recorder || c.req.method !== 'GET') return;
  const path = c.req.path;
  if (path.startsWith('/static/') || path.startsWith('/api/') || path === '/api' || path === '/healthz' || path === '/readyz') return;
  if (c.res.status < 200 || c.res.status >= 300) return;
  if (!(c.res.headers.get('content-type') ?? '').startsWith('text/html')) return;
  const header = (n: string) => c.req.header(n);
  if (isBot(header('user-agent'))) return;
  const url = new URL(c.req.url);
  const cls = referrerClass(header('referer'), header('host') ?? url.host);
  const at = c.get('deps').now();
  const stored = path.length > 2000 ? path.slice(0, 2000) : path;
  if (privacySignal(header)) {
    recorder.record({ visitorId: randomUUID(), userId: null, at, path: stored, referrerClass: cls });
    return;
  }
  let visitorId = getCookie(c, VISITOR_COOKIE);
  if (!visitorId || !UUID.test(visitorId)) {
    visitorId = randomUUID();
    // on the answer's own headers (setCookie, i.e. c.header() after the handler, would rebuild the answer as a stream)
    c.res.headers.append('Set-Cookie', generateCookie(VISITOR_COOKIE, visitorId, {
      path: '/', maxAge: 400 * 24 * 3600, sameSite: 'Lax', httpOnly: true, secure: !!c.get('deps').config.secureCookies,
    }));
  }
  recorder.record({ visitorId, userId: c.get('user')?.id ?? null, at, path: stored, referrerClass: cls });
};
