// Security headers on every response, pages and API alike. The Content-Security-Policy is strict: scripts only
// from our origin (no inline script, no 'unsafe-eval': charts run Vega's expression interpreter instead of
// new Function), styles only from our origin (components use constructable stylesheets), no framing, no plugins.
import type { MiddlewareHandler } from 'hono';
import type { Env } from './types.ts';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()',
};

/** Sets the headers after the handler ran, so error pages get them too; a route that set its own header keeps it. */
export const securityHeaders: MiddlewareHandler<Env> = async (c, next) => {
  await next();
  for (const [name, value] of Object.entries(HEADERS)) {
    if (!c.res.headers.has(name)) c.res.headers.set(name, value);
  }
  // What a signed-in person sees is theirs alone: no browser or shared cache keeps it, unless the route chose its own
  // policy (reports revalidate with ETags, bundles are immutable). This covers admin pages, the audit log, account.
  if (c.get('user') && !c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'no-store');
  // HSTS only makes sense (and is only honoured) over HTTPS, which secureCookies announces.
  if (c.get('deps')?.secureCookies && !c.res.headers.has('Strict-Transport-Security')) {
    c.res.headers.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
  }
};
