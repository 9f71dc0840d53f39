// One error shape for the whole product: JSON under /api, an HTML page elsewhere; never a stack trace or SQL.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Env } from './types.ts';
import { page, html } from './html.ts';
import { requestLabel } from './request-id.ts';
import { isDbUnavailable } from './db/index.ts';

/** Hono's HTTPException with what our error shape adds: per-field messages and response headers (Retry-After …). */
export class HttpError extends HTTPException {
  constructor(status: ContentfulStatusCode, message: string, public fields?: Record<string, string>,
    public headers?: Record<string, string>) {
    super(status, { message });
  }
}

export const badRequest = (message: string, fields?: Record<string, string>) => new HttpError(400, message, fields);
export const notFound = (message = 'Not found') => new HttpError(404, message);

const TITLES: Record<number, string> = {
  400: 'Bad request', 401: 'Sign in required', 403: 'Forbidden', 404: 'Not found', 405: 'Method not allowed',
  409: 'Conflict', 413: 'Too large', 421: 'Unknown host name', 415: 'Unsupported media type', 429: 'Too many requests', 500: 'Something went wrong',
  503: 'Unavailable',
};

/** Seconds a client is asked to wait (Retry-After) when the database is unavailable. */
export const RETRY_AFTER_S = 5;

export function isApi(path: string) { return path === '/api' || path.startsWith('/api/'); }

export function errorResponse(c: Context<Env>, status: ContentfulStatusCode, message: string,
  fields?: Record<string, string>, headers?: Record<string, string>) {
  const requestId = c.get('requestId');
  for (const [k, v] of Object.entries(headers ?? {})) c.header(k, v);
  if (isApi(c.req.path)) return c.json({ error: { status, message, ...(fields ? { fields } : {}), requestId } }, status);
  const title = TITLES[status] ?? 'Error';
  return c.html(page(c, {
    title,
    body: html`<main class="narrow"><h1>${title}</h1><p class="error-message">${message}</p>
      ${fields ? html`<ul class="field-errors">${Object.entries(fields).map(([k, v]) => html`<li><b>${k}</b>: ${v}</li>`)}</ul>` : ''}
      <p class="muted">Request id ${requestId}</p><p><a href="/">Home</a></p></main>`,
  }), status);
}

export function onError(err: Error, c: Context<Env>) {
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    const extra = err instanceof HttpError ? err : undefined;
    return errorResponse(c, status, err.message || TITLES[status] || 'Error', extra?.fields, extra?.headers);
  }
  const log = c.get('deps')?.log ?? console.error;
  if (isDbUnavailable(err)) {
    // not a bug: the database is down, restarting, refusing connections or the pool is exhausted — try again shortly
    log(`[error] request ${requestLabel(c)} ${c.req.method} ${c.req.path}: database unavailable: ${err.message}`);
    return errorResponse(c, 503, 'The database is unavailable right now; try again in a few seconds.', undefined,
      { 'Retry-After': String(RETRY_AFTER_S) });
  }
  log(`[error] request ${requestLabel(c)} ${c.req.method} ${c.req.path}: ${err.stack ?? err.message}`);
  return errorResponse(c, 500, 'An unexpected error occurred. It has been logged; quote the request id when reporting it.');
}
