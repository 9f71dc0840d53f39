// Static files under /static: public/ as is, and the hashed bundles of public/build (views/build.ts) served from
// their precompressed .br/.gz siblings by Accept-Encoding. Hashed files never change, so browsers keep them a year;
// the rest (favicon, unbundled app.css) for an hour.
import type { MiddlewareHandler } from 'hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Env } from './types.ts';
import { PUBLIC_DIR } from './assets.ts';

const files = serveStatic<Env>({
  root: PUBLIC_DIR,
  rewriteRequestPath: (p) => p.replace(/^\/static/, ''),
  precompressed: true,
});

export const staticFiles: MiddlewareHandler<Env> = async (c, next) => {
  // serveStatic's onFound runs after the response is built, too late for headers: set them on the way out.
  const res = await files(c, next);
  const out = res ?? c.res;
  if (out && (out.status === 200 || out.status === 206 || out.status === 304) && !out.headers.has('Cache-Control')) {
    const hashed = c.req.path.startsWith('/static/build/') && c.req.path !== '/static/build/manifest.json';
    out.headers.set('Cache-Control', hashed ? 'public, max-age=31536000, immutable' : 'public, max-age=3600');
    // Encoding-negotiated responses must be cached per encoding (also set when the file has no compressed twin).
    if (/\.(js|css|svg|json|map)$/.test(c.req.path) && !out.headers.get('Vary')?.includes('Accept-Encoding')) out.headers.append('Vary', 'Accept-Encoding');
  }
  return res;
};
