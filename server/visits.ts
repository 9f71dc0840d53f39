// Visits: every HTML page view becomes a `visits` row, written off the request path. The middleware (record-visits.ts) only
// appends to an in-process buffer; a VisitRecorder flushes it every second (or as soon as 500 rows wait) with ONE
// multi-row INSERT … SELECT FROM unnest(…). main.ts flushes it as a shutdown step, after the server stopped taking
// requests and before the pool closes, so a clean shutdown loses nothing. Memory is bounded: while the database is
// down rows wait, up to 20,000; beyond that new ones are dropped and counted (logged once per outage).
//
// What counts: GET, answered 2xx with text/html — not static files, the API, probes, redirects or errors — and not
// from bots (by User-Agent; no User-Agent at all counts as a bot). The referrer class comes from the Referer header.
// Privacy: the anonymous visitor cookie (mq_visitor, a random UUID, 400 days) is set only when the browser sends
// neither `DNT: 1` nor `Sec-GPC: 1`. With either, the view is still counted, but with a random visitor id of its own
// and no user id: it cannot be linked to a person or to any other view, and no cookie is read or set.
import sql from 'sql-template-tag';
import type { Db } from './db/index.ts';

export const VISITOR_COOKIE = 'mq_visitor';

export type ReferrerClass = 'direct' | 'search' | 'social' | 'email' | 'ads' | 'partner' | 'internal';
export interface Visit { visitorId: string; userId: number | null; at: Date; path: string; referrerClass: ReferrerClass }

export interface VisitRecorderOptions {
  /** Rows per INSERT, and the buffer size that triggers a flush before the timer (default 500). */
  batch?: number;
  /** Flush interval in ms (default 1000). */
  intervalMs?: number;
  /** Rows kept while the database is unreachable; beyond, new rows are dropped and counted (default 20,000). */
  maxBuffered?: number;
  log?: (line: string) => void;
}

export class VisitRecorder {
  private buffer: Visit[] = [];
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failing = false;
  private dropWarned = false;
  /** Rows written, rows dropped (buffer full or recorder closed), failed flush attempts. */
  readonly stats = { written: 0, dropped: 0, failedFlushes: 0 };
  private readonly batch: number;
  private readonly maxBuffered: number;
  private readonly log: (line: string) => void;

  constructor(private db: Db, opts: VisitRecorderOptions = {}) {
    this.batch = opts.batch ?? 500;
    this.maxBuffered = opts.maxBuffered ?? 20_000;
    this.log = opts.log ?? ((l) => console.error(l));
    this.timer = setInterval(() => { void this.flush(); }, opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  get pending(): number { return this.buffer.length; }

  record(v: Visit) {
    if (this.closed || this.buffer.length >= this.maxBuffered) {
      this.stats.dropped++;
      if (!this.closed && !this.dropWarned) {
        this.dropWarned = true;
        this.log(`[visits] ${this.maxBuffered} visits waiting: dropping new ones until the database answers`);
      }
      return;
    }
    this.buffer.push(v);
    if (this.buffer.length >= this.batch) void this.flush();
  }

  /** Writes everything buffered (one INSERT per `batch` rows); concurrent calls share one run. Never throws. */
  flush(): Promise<void> {
    this.running ??= this.drain().finally(() => { this.running = null; });
    return this.running;
  }

  private async drain() {
    while (this.buffer.length) {
      const rows = this.buffer.slice(0, this.batch);
      try {
        await this.db.query(sql`
          INSERT INTO visits (visitor_id, user_id, at, path, referrer_class)
          SELECT v.visitor_id, u.id, v.at, v.path, v.referrer_class
          FROM unnest(${rows.map((r) => r.visitorId)}::uuid[], ${rows.map((r) => r.userId)}::bigint[],
                      ${rows.map((r) => r.at)}::timestamptz[], ${rows.map((r) => r.path)}::text[],
                      ${rows.map((r) => r.referrerClass)}::text[]) AS v(visitor_id, user_id, at, path, referrer_class)
          LEFT JOIN users u ON u.id = v.user_id`); // a user deleted meanwhile: the view stays, anonymous
        this.buffer.splice(0, rows.length);
        this.stats.written += rows.length;
        if (this.failing) { this.log(`[visits] writing again (${this.stats.dropped} dropped so far)`); this.failing = false; this.dropWarned = false; }
      } catch (e: any) {
        this.stats.failedFlushes++;
        if (!this.failing) this.log(`[visits] could not write ${this.buffer.length} visits, keeping them for the next try: ${e.message}`);
        this.failing = true;
        return;
      }
    }
  }

  /** Stops the timer and writes what is left (a shutdown step); visits recorded after this are dropped. */
  async close() {
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
    if (this.buffer.length) {
      this.log(`[visits] shutdown: ${this.buffer.length} visits could not be written`);
      this.stats.dropped += this.buffer.length;
      this.buffer = [];
    }
  }
}

// Crawlers, link previewers, monitors, command-line clients and automation identify themselves in the User-Agent.
const BOT = /bot\b|bot\/|crawl|spider|slurp|mediapartners|facebookexternalhit|embedly|preview|headless|phantomjs|lighthouse|pingdom|uptime|monitor|curl\/|wget\/|httpie|python-requests|python-urllib|aiohttp|go-http-client|okhttp|java\/|libwww|axios\/|node-fetch|undici|postman|autocannon|scrapy|k6\//i;
export const isBot = (ua: string | undefined) => !ua || !ua.trim() || BOT.test(ua);

const SEARCH = /(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|startpage|search\.brave|naver|seznam)\./;
const SOCIAL = /(^|\.)(facebook|fb|instagram|twitter|x|t|tiktok|reddit|youtube|youtu|linkedin|lnkd|pinterest|tumblr|snapchat|threads|mastodon|bsky|whatsapp|telegram|discord)\.(com|co|net|me|app|social|org|be|in|gg)$/;
const EMAIL = /(^|\.)(mail\.google|outlook\.live|outlook\.office|mail\.yahoo|mail\.proton|proton|webmail|mail\.aol|mail\.zoho|fastmail|gmx|mail\.com)\b|^(mail|webmail)\./;
const ADS = /(^|\.)(doubleclick\.net|googleadservices\.com|googlesyndication\.com|adservice\.google\.|ads\.|adclick|criteo|taboola|outbrain|bat\.bing)/;

/** The referrer class of a page view: from the Referer header against this request's own host. */
export function referrerClass(referer: string | undefined, ownHost: string): ReferrerClass {
  if (!referer) return 'direct';
  let url: URL;
  try { url = new URL(referer); } catch { return 'direct'; }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'direct';
  const host = url.hostname.toLowerCase();
  if (url.host.toLowerCase() === ownHost.toLowerCase()) return 'internal';
  if (ADS.test(host) || url.searchParams.has('gclid') || url.searchParams.has('fbclid') && /ads/.test(host)) return 'ads';
  if (EMAIL.test(host)) return 'email';
  if (SEARCH.test(host)) return 'search';
  if (SOCIAL.test(host)) return 'social';
  // any other site linking here: a partner (affiliates, review sites, press)
  return 'partner';
}
