// Compresses the server's text answers (pages, JSON, CSV, SVG) for clients that accept it: brotli (quality 4: cheap
// enough for dynamic answers, smaller than gzip) or gzip, whichever the client prefers; a tie goes to brotli. Like
// hono/compress (which has no brotli), with these rules:
// - the body is piped through the compressor, never buffered: a CSV download still streams from its cursor, and a
//   client that goes away cancels the compressor and with it the cursor (releasing its connection);
// - a strong ETag becomes weak (W/"…"): the bytes differ per encoding; If-None-Match compares weakly, so 304s hold;
// - /static/* is left alone: server/static.ts serves precompressed .br/.gz twins and sets its own Vary;
// - HEAD, 204/206/304, answers already encoded, `Cache-Control: no-transform` and bodies known to be < 1 KiB pass as is
//   (a body given as a string or bytes is known: @hono/node-server keeps it as it is, see plainBody — /healthz and
//   small JSON answers were brotli-streamed on every request);
// - a known body up to 64 KiB is compressed at once (~0.1 ms), not piped through a stream: the stream's setup cost
//   more than the compression of a typical report answer;
// - the body is not touched for a client that gets identity: reading it turns @hono/node-server's light response into a
//   web stream read chunk by chunk (a large share of a page's CPU time), where a string is otherwise written at once.
// A page the same for many requests is better encoded once (EncodedText, sendEncoded): served from memory per encoding.
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import type { Context, MiddlewareHandler } from 'hono';
import type { Env } from './types.ts';

const COMPRESSIBLE = /^\s*(?:text\/|application\/(?:json|javascript|xml)|image\/svg\+xml)/i;
const THRESHOLD = 1024;
const AT_ONCE_MAX = 64 * 1024;

type Encoding = 'br' | 'gzip';

/** The encoding to use for an Accept-Encoding header, or undefined (identity). */
export function chooseEncoding(header: string | undefined): Encoding | undefined {
  if (!header) return undefined;
  const q = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = qp ? Number(qp.slice(2)) : 1;
    q.set(name, Number.isFinite(value) ? value : 0);
  }
  const of = (e: string) => q.get(e) ?? q.get('*') ?? 0;
  const br = of('br'), gzip = of('gzip');
  if (br > 0 && br >= gzip) return 'br';
  if (gzip > 0) return 'gzip';
  return undefined;
}

const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } };

function compressor(encoding: Encoding) {
  return encoding === 'br' ? zlib.createBrotliCompress(BROTLI) : zlib.createGzip();
}

function compressNow(encoding: Encoding, bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(encoding === 'br' ? zlib.brotliCompressSync(bytes, BROTLI) : zlib.gzipSync(bytes));
}

/**
 * The body of an answer made from a string or bytes (c.json, c.html, c.body), without reading it: @hono/node-server's
 * Response keeps such a body as it is (under its `cache` symbol, beside status and headers) until something reads it.
 * undefined for a stream or any other Response (e.g. under app.request in tests, where the global Response is
 * Node's own): the answer is then piped through the compressor as before.
 */
export function plainBody(res: Response): string | Uint8Array | undefined {
  const key = Object.getOwnPropertySymbols(res).find((k) => k.description === 'cache');
  const kept = key ? (res as unknown as Record<symbol, unknown>)[key] : undefined;
  const body = Array.isArray(kept) ? kept[1] : undefined;
  return typeof body === 'string' || body instanceof Uint8Array ? body : undefined;
}

/** A text kept as its UTF-8 bytes, and compressed once per encoding a client asked for (kept beside them). */
export class EncodedText {
  private readonly bytes: Partial<Record<Encoding, Uint8Array<ArrayBuffer>>> = {};
  readonly identity: Uint8Array<ArrayBuffer>;
  constructor(text: string) { this.identity = Buffer.from(text, 'utf8'); }
  in(encoding: Encoding | undefined): Uint8Array<ArrayBuffer> {
    if (!encoding) return this.identity;
    return this.bytes[encoding] ??= encoding === 'br' ? zlib.brotliCompressSync(this.identity, BROTLI) : zlib.gzipSync(this.identity);
  }
}

/** The answer for a kept text, in the encoding this client prefers (compressText leaves an encoded answer alone). */
export function sendEncoded(c: Context<Env>, text: EncodedText, contentType: string): Response {
  const encoding = chooseEncoding(c.req.header('Accept-Encoding'));
  c.header('Vary', 'Accept-Encoding', { append: true });
  if (encoding) c.header('Content-Encoding', encoding);
  c.header('Content-Type', contentType);
  return c.body(text.in(encoding));
}

export const compressText: MiddlewareHandler<Env> = async (c, next) => {
  await next();
  if (c.req.path.startsWith('/static/')) return;
  const res = c.res;
  const type = res.headers.get('Content-Type');
  if (!type || !COMPRESSIBLE.test(type)) return;
  if (c.req.method === 'HEAD' || res.status === 204 || res.status === 206 || res.status === 304) return;
  if (res.headers.has('Content-Encoding') || /(?:^|,)\s*no-transform\s*(?:,|$)/i.test(res.headers.get('Cache-Control') ?? '')) return;
  const body = plainBody(res);
  const length = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body ? body.byteLength : Number(res.headers.get('Content-Length') ?? NaN);
  if (length < THRESHOLD) return;
  // The answer depends on Accept-Encoding from here on, whether or not this client gets it compressed.
  const vary = res.headers.get('Vary');
  const varies = vary === '*' || /(?:^|,)\s*accept-encoding\s*(?:,|$)/i.test(vary ?? '');
  if (!varies) res.headers.set('Vary', vary ? `${vary}, Accept-Encoding` : 'Accept-Encoding');
  const encoding = chooseEncoding(c.req.header('Accept-Encoding'));
  if (!encoding) return;
  const etag = res.headers.get('ETag');
  // (res.body is read only for the streamed path: reading it turns a kept string into a web stream)
  const atOnce = body !== undefined && length <= AT_ONCE_MAX ? compressNow(encoding, typeof body === 'string' ? Buffer.from(body, 'utf8') : body) : undefined;
  if (!atOnce && !res.body) return;
  c.res = new Response(atOnce ?? res.body!.pipeThrough(Duplex.toWeb(compressor(encoding)) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>), res);
  // (Hono's c.res setter copies the previous headers back: adjust them after the assignment.)
  if (atOnce) c.res.headers.set('Content-Length', String(atOnce.byteLength));
  else c.res.headers.delete('Content-Length');
  c.res.headers.set('Content-Encoding', encoding);
  if (etag && !etag.startsWith('W/')) c.res.headers.set('ETag', `W/${etag}`);
};
