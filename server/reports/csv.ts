// CSV downloads of a report (GET /api/reports/:id.csv): streamed through the engine's cursor, named after the report
// and its filters, and limited to MARQUEE_CSV_STREAMS at once in this process.
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import { streamCsv } from './engine.ts';
import { catalogOf, roleOf, rawQuery, matches, freshnessHeaders } from './http.ts';
import { exportFileBase } from '../../views/export-name.ts';

export async function csvDownload(c: Context<Env>, id: string) {
  const catalog = catalogOf(c);
  const { readDb, now, log, config } = c.get('deps');
  const role = roleOf(c);
  const inm = c.req.header('if-none-match');
  // A download holds a pooled connection until the client has read it all: cap how many run at once, so slow or
  // abandoned downloads cannot take the connections every other request needs.
  if (csvStreams >= config.csvStreams) {
    throw new HttpError(503, `Too many CSV downloads are running (at most ${config.csvStreams}); try again in a few seconds`, undefined, { 'Retry-After': '5' });
  }
  csvStreams++;
  let released = false;
  const release = () => { if (!released) { released = true; csvStreams--; } };
  let s: Awaited<ReturnType<typeof streamCsv>>;
  try {
    s = await streamCsv(readDb, catalog, id, rawQuery(c), {
      role, now: now(), log, ifNoneMatch: (e) => matches(inm, `"${e}-csv"`),
    });
  } catch (e) {
    release();
    throw e;
  }
  if (!s.body) release();
  if (s.etag) c.header('ETag', `"${s.etag}-csv"`);
  freshnessHeaders(c, s);
  if (!s.body) return c.body(null, 304);
  c.header('Content-Type', 'text/csv; charset=utf-8');
  c.header('Content-Disposition', `attachment; filename="${exportFileBase(id, s.params.query)}.csv"`);
  // Hono answers HEAD with the GET handler's headers and drops the body without cancelling it: close the cursor here.
  if (c.req.method === 'HEAD') {
    await s.body.cancel();
    release();
    return c.body(null, 200);
  }
  return c.body(releasing(s.body, release));
}

/** CSV downloads in flight in this process (MARQUEE_CSV_STREAMS, default 4). */
let csvStreams = 0;

/** The same bytes; `release` runs once when the body ends, fails or is cancelled by the client. */
function releasing(body: ReadableStream<Uint8Array>, release: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const { done, value } = await reader.read();
        if (done) { release(); ctrl.close(); } else ctrl.enqueue(value);
      } catch (e) {
        release();
        ctrl.error(e);
      }
    },
    async cancel(reason) {
      release();
      await reader.cancel(reason);
    },
  }, { highWaterMark: 1 });
}
