// Compressed text answers (server/compress.ts): pages, JSON and CSV in brotli or gzip by Accept-Encoding, Vary set,
// ETags weakened and still answering 304, CSV still a stream (a cancelled compressed download frees its slot), the
// precompressed bundles (server/static.ts) not compressed twice, HEAD and identity clients untouched.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import zlib from 'node:zlib';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import http from 'node:http';
import { chooseEncoding } from '../server/compress.ts';
import { listen } from '../server/serve.ts';
import { defaultConfig } from '../server/config.ts';

const MAX_CSV_STREAMS = defaultConfig().csvStreams;
import { assetUrl } from '../server/assets.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import type { Deps } from '../server/types.ts';
import { ensureBuilt } from '../views/build.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
let app: ReturnType<typeof createApp>;
let cookie: string;
const get = (url: string, headers: Record<string, string> = {}, method = 'GET') => authedRequest(app, cookie, url, { headers, method });
const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());
const decode = (res: Response, body: Buffer) => {
  const enc = res.headers.get('content-encoding');
  return (enc === 'br' ? zlib.brotliDecompressSync(body) : enc === 'gzip' ? zlib.gunzipSync(body) : body).toString('utf8');
};

test.before(async () => {
  await ensureBuilt();
  await createBasicSources(t.db, `SELECT (ARRAY['a','b','c'])[1 + g % 3], date '2026-01-01' + g, g FROM generate_series(0, 400) g`);
  const catalog: Catalog = loadCatalog(path.resolve(import.meta.dirname, 'fixtures/reports/basic'));
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, log: () => {} } as Deps);
  cookie = await sessionCookie(t.db, (await createUser(t.db, { role: 'analyst' })).id);
});

test('Accept-Encoding: brotli preferred on a tie, q-values honoured, identity when nothing usable', () => {
  assert.is(chooseEncoding('gzip, deflate, br'), 'br');
  assert.is(chooseEncoding('gzip'), 'gzip');
  assert.is(chooseEncoding('br;q=0.5, gzip'), 'gzip');
  assert.is(chooseEncoding('*'), 'br');
  assert.is(chooseEncoding('br;q=0, gzip;q=0'), undefined);
  assert.is(chooseEncoding('identity'), undefined);
  assert.is(chooseEncoding(undefined), undefined);
});

test('pages and JSON are compressed for clients that accept it, and vary on Accept-Encoding', async () => {
  for (const url of ['/reports/fx_by_kind', '/api/reports/fx_by_kind', '/api/reports/fx_by_kind.json', '/reports']) {
    const plain = await get(url);
    const plainText = await plain.text();
    assert.is(plain.headers.get('content-encoding'), null, url);
    assert.match(plain.headers.get('vary') ?? '', /Accept-Encoding/i, `${url}: Vary`);
    for (const enc of ['br', 'gzip']) {
      const res = await get(url, { 'Accept-Encoding': enc });
      assert.is(res.status, 200, url);
      assert.is(res.headers.get('content-encoding'), enc, `${url} ${enc}`);
      assert.is(res.headers.get('content-length'), null);
      const body = await bytes(res);
      const text = decode(res, body);
      // the API's "asOf" of live reports moves with the clock: compare the shapes, not the instants
      const norm = (s: string) => s.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'T');
      assert.is(norm(text), norm(plainText), `${url} ${enc}: same content`);
      assert.ok(body.length < plainText.length, `${url} ${enc}: ${body.length} ≥ ${plainText.length} bytes`);
    }
  }
  // error pages too (a 404 page is > 1 KiB of layout)
  const missing = await get('/nothing-here', { 'Accept-Encoding': 'br' });
  assert.is(missing.status, 404);
  assert.is(missing.headers.get('content-encoding'), 'br');
});

test('the report ETag becomes weak when compressed and If-None-Match still answers 304, either form', async () => {
  const res = await get('/api/reports/fx_by_kind', { 'Accept-Encoding': 'br' });
  await res.arrayBuffer();
  const weak = res.headers.get('etag')!;
  assert.match(weak, /^W\/"/);
  const strong = (await get('/api/reports/fx_by_kind')).headers.get('etag')!;
  assert.is(weak, `W/${strong}`);
  for (const inm of [weak, strong]) {
    for (const enc of ['br', 'gzip', '']) {
      const again = await get('/api/reports/fx_by_kind', { 'If-None-Match': inm, ...(enc ? { 'Accept-Encoding': enc } : {}) });
      assert.is(again.status, 304, `${inm} ${enc}`);
      assert.is(again.headers.get('content-encoding'), null);
    }
  }
  const csv = await get('/api/reports/fx_by_kind.csv', { 'Accept-Encoding': 'gzip' });
  await csv.arrayBuffer();
  assert.is((await get('/api/reports/fx_by_kind.csv', { 'If-None-Match': csv.headers.get('etag')! })).status, 304);
});

test('a compressed CSV still streams: same rows, no length, named with its filters; cancelling frees the slot', async () => {
  const url = '/api/reports/fx_by_kind.csv?min_n=1';
  const plain = await get(url);
  const plainText = await plain.text();
  assert.match(plain.headers.get('content-disposition')!, /filename="fx_by_kind_min_n-1\.csv"/);
  const res = await get(url, { 'Accept-Encoding': 'gzip, br' });
  assert.is(res.headers.get('content-encoding'), 'br');
  assert.is(res.headers.get('content-length'), null);
  assert.match(res.headers.get('content-disposition')!, /filename="fx_by_kind_min_n-1\.csv"/);
  assert.is(decode(res, await bytes(res)), plainText);
  // More downloads than there are CSV slots, each abandoned unread: each must give its slot back.
  for (let i = 0; i < MAX_CSV_STREAMS + 2; i++) {
    const r = await get(url, { 'Accept-Encoding': i % 2 ? 'gzip' : 'br' });
    assert.is(r.status, 200, `download ${i}`);
    await r.body!.cancel();
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.is((await get(url, { 'Accept-Encoding': 'gzip' })).status, 200, 'slots were released');
});

test('HEAD, identity clients and precompressed bundles are left alone', async () => {
  const head = await get('/reports/fx_by_kind', { 'Accept-Encoding': 'br' }, 'HEAD');
  assert.is(head.headers.get('content-encoding'), null);
  const js = await app.request(assetUrl('report-page.js'), { headers: { 'Accept-Encoding': 'br' } });
  assert.is(js.status, 200);
  assert.is(js.headers.get('content-encoding'), 'br');
  const text = zlib.brotliDecompressSync(Buffer.from(await js.arrayBuffer())).toString('utf8');
  assert.ok(/import|export|function/.test(text), 'decompressed once gives JavaScript');
});

// Through real HTTP the answers are @hono/node-server's Responses, whose string bodies compressText can size without
// reading them (app.request above uses Node's own Response: the streamed path).
test('over HTTP: a small answer is sent as is, a known body up to 64 KiB compressed at once with its length', async () => {
  const { server, url } = await listen(app.fetch, 0, '127.0.0.1');
  const raw = (path: string, encoding?: string) => new Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    http.get(new URL(path, url), { headers: { cookie, ...(encoding ? { 'accept-encoding': encoding } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d) => chunks.push(d)).on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) })).on('error', reject);
    }).on('error', reject);
  });
  try {
    const health = await raw('/healthz', 'gzip, deflate, br, zstd');
    assert.is(health.headers['content-encoding'], undefined, '/healthz is < 1 KiB');
    assert.is(JSON.parse(health.body.toString('utf8')).status, 'ok');
    for (const path of ['/reports', '/reports/fx_by_kind']) {
      const plain = await raw(path);
      assert.ok(plain.body.length >= 1024 && plain.body.length <= 64 * 1024, `${path}: ${plain.body.length} bytes`);
      for (const enc of ['br', 'gzip']) {
        const res = await raw(path, enc);
        assert.is(res.headers['content-encoding'], enc, `${path} ${enc}`);
        assert.is(res.headers['content-length'], String(res.body.length), `${path} ${enc}: sent with its length`);
        assert.match(String(res.headers.vary), /Accept-Encoding/i);
        const text = (enc === 'br' ? zlib.brotliDecompressSync(res.body) : zlib.gunzipSync(res.body)).toString('utf8');
        // (the page carries a fresh CSRF token per request: compare all but the tokens)
        const norm = (s: string) => s.replace(/[A-Za-z0-9_-]{32,}/g, 'T');
        assert.is(norm(text), norm(plain.body.toString('utf8')), `${path} ${enc}: same content`);
      }
    }
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test.run();
