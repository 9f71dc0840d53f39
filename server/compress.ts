// Compresses the server's text answers (pages, JSON, CSV, SVG) for clients that accept it: brotli (quality 4: cheap
// enough for dynamic answers, smaller than gzip) or gzip, whichever the client prefers; a tie goes to brotli. Like
// hono/compress (which has no brotli), with these rules:
// - the body is piped through the compressor, never buffered: a CSV download still streams from its cursor, and a
//   client that goes away cancels the compressor and with it the cursor (releasing its connection);
// - a strong ETag becomes weak (W/"…"): the bytes differ per encoding; If-None-Match compares weakly, so 304s hold;
// - /static/* is left alone: server/static.ts serves precompressed .br/.gz twins and sets its own Vary;
// - HEAD, 204/206/304, answers already encoded, `Cache-Control: no-transform` and bodies known to be < 1 KiB pass as is;
// - the body is not touched for a client that gets identity: reading it turns @hono/node-server's light response into a
//   web stream read chunk by chunk (a large share of a page's CPU time), where a string is otherwise written at once.
// A page the same for many requests is better encoded once (EncodedText, sendEncoded): served from memory per encoding.
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import type { Context, MiddlewareHandler } from 'hono';
import type { Env } from './types.ts';

const COMPRESSIBLE = /^\s*(?:text\/|application\/(?:json|javascript|xml)|image\/svg\+xml)/i;
const THRESHOLD = 1024;

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
  const length = res.headers.get('Content-Length');
  if (length && Number(length) < THRESHOLD) return;
  // The answer depends on Accept-Encoding from here on, whether or not this client gets it compressed.
  const vary = res.headers.get('Vary');
  const varies = vary === '*' || /(?:^|,)\s*accept-encoding\s*(?:,|$)/i.test(vary ?? '');
  if (!varies) res.headers.set('Vary', vary ? `${vary}, Accept-Encoding` : 'Accept-Encoding');
  const encoding = chooseEncoding(c.req.header('Accept-Encoding'));
  if (!encoding || !res.body) return;
  const etag = res.headers.get('ETag');
  c.res = new Response(res.body.pipeThrough(Duplex.toWeb(compressor(encoding)) as unknown as ReadableWritablePair<Uint8Array, Uint8Array>), res);
  // (Hono's c.res setter copies the previous headers back: adjust them after the assignment.)
  c.res.headers.delete('Content-Length');
  c.res.headers.set('Content-Encoding', encoding);
  if (etag && !etag.startsWith('W/')) c.res.headers.set('ETag', `W/${etag}`);
};
