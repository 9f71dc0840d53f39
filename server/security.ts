// Security headers on every response, pages and API alike, by Hono's secureHeaders. The Content-Security-Policy is
// strict: scripts only from our origin (no inline script, no 'unsafe-eval': charts run Vega's expression interpreter
// instead of new Function), styles only from our origin (components use constructable stylesheets), no framing, no
// plugins. Headers are set after the handler ran, so error pages get them too; a route that set its own keeps it.
import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { Env } from './types.ts';

const CSP = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'"],
  connectSrc: ["'self'"],
  workerSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
};

/**
 * The same policy as a header value, with other frame-ancestors: for a page meant to be framed (an embed link with an
 * allowed origin). A response carrying it gets no X-Frame-Options (its DENY would override the CSP in old browsers).
 */
export function framablePolicy(frameAncestors: string[]): string {
  return Object.entries({ ...CSP, frameAncestors })
    .map(([k, v]) => `${k.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)} ${v.join(' ')}`).join('; ');
}

const common = {
  contentSecurityPolicy: CSP,
  xFrameOptions: 'DENY' as const,
  referrerPolicy: 'same-origin',
  crossOriginOpenerPolicy: 'same-origin',
  crossOriginResourcePolicy: 'same-origin',
  crossOriginEmbedderPolicy: false,
  permissionsPolicy: { camera: [], microphone: [], geolocation: [], payment: [], usb: [] },
  overwrite: false,
};
const plain = secureHeaders({ ...common, strictTransportSecurity: false });
// HSTS only makes sense (and is only honoured) over HTTPS, which secureCookies announces.
const https = secureHeaders({ ...common, strictTransportSecurity: 'max-age=31536000; includeSubDomains' });

export const securityHeaders: MiddlewareHandler<Env> = async (c, next) => {
  await (c.get('deps')?.config.secureCookies ? https : plain)(c, next);
  if (!/frame-ancestors 'none'/.test(c.res.headers.get('Content-Security-Policy') ?? "frame-ancestors 'none'")) c.res.headers.delete('X-Frame-Options');
  // What a signed-in person sees is theirs alone: no browser or shared cache keeps it, unless the route chose its own
  // policy (reports revalidate with ETags, bundles are immutable). This covers admin pages, the audit log, account.
  if (c.get('user') && !c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'no-store');
};
