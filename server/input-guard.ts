// Input no route can store or compare: PostgreSQL text cannot hold a NUL character (the driver's query fails with
// "invalid byte sequence for encoding UTF8: 0x00", a 500). One check in front of every route turns a NUL anywhere in
// the query string into a 400 naming the parameter; form bodies get the same check in formBody().
import type { MiddlewareHandler } from 'hono';
import type { Env } from './types.ts';
import { HttpError } from './errors.ts';

/** The largest request body any route reads (app.ts caps every request with hono/body-limit). */
export const MAX_BODY_BYTES = 1024 * 1024;

export const rejectNulInQuery: MiddlewareHandler<Env> = async (c, next) => {
  const url = c.req.url;
  const q = url.indexOf('?');
  if (q >= 0 && /%00/.test(url.slice(q))) {
    for (const [k, v] of new URL(url).searchParams) {
      if (k.includes('\u0000') || v.includes('\u0000')) {
        const name = k.replace(/\u0000/g, '').slice(0, 64) || '(unnamed parameter)';
        throw new HttpError(400, `The query parameter ${name} contains a NUL character`, { [name]: 'must not contain a NUL character' });
      }
    }
  }
  await next();
};
