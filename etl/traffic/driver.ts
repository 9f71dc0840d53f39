// The live-traffic driver (README "Live traffic"): simulated people using the product over real HTTP, as browsers would — a cookie
// jar each, this site's Origin on every POST, the forms' own hidden fields (idempotency keys) read from the HTML,
// redirects followed by hand. Visitors browse and search (misspelt searches too), some sign up (following the
// confirmation link from the outbox when one is readable) and subscribe (a share with a declined card first),
// subscribers watch, upgrade, cancel and resume. Staff people sign in with the staff accounts given: analysts open
// report pages with varied parameters (and their data, sometimes the CSV), managers open dashboards with filters (and
// every tile's data, as the page's preloads ask). Bounded by a duration and a request count; every answer is counted,
// 4xx and 5xx included, and its time per route class (p50/p99); nothing the server answers stops the run. Choices are deterministic by seed (the
// interleaving of requests depends on the server's timing). Used by etl/traffic.ts (CLI), server/main.ts
// (MARQUEE_DEMO_TRAFFIC=1) and test/bench.
import fs from 'node:fs/promises';
import path from 'node:path';

export interface TrafficOptions {
  /** The site, e.g. http://127.0.0.1:3000 (also sent as Origin on POSTs). */
  base: string;
  /** Simulated people in the pool. */
  users: number;
  /** Visits started per second (a visit is a few requests by one person). */
  rate: number;
  /** Stop starting visits after this long (ms); Infinity for the demo. */
  durationMs: number;
  /** Stop after this many requests. */
  maxRequests: number;
  seed: number;
  /** Where the server writes its mail (.eml): sign-ups are confirmed from there; undefined: they stop at "check your email". */
  outboxDir?: string;
  /** Share of checkouts made first with the declined test card (default 0.2). */
  declineShare?: number;
  /** Share of a visitor's visits that sign up (default 0.3; the server allows MARQUEE_SIGNUPS_PER_IP_HOUR an hour per address). */
  signupShare?: number;
  /** Per-request timeout (ms, default 15 s). */
  requestTimeoutMs?: number;
  /** Prefix of the e-mail addresses of the people it signs up (default traffic-<seed>-<time>). */
  emailTag?: string;
  /** Send each person's own address in X-Forwarded-For (10.x.y.z by person), as people behind a load balancer arrive;
   *  for a server with MARQUEE_TRUST_PROXY=1 (else per-address limits and locks see one address for everyone). */
  forwardedFor?: boolean;
  /** Staff people, signed in with `logins` of their role (several people may share one account: sessions are per browser). */
  staff?: StaffOptions;
  log?: (line: string) => void;
}

export interface StaffLogin { role: 'analyst' | 'manager'; email: string; password: string }
export interface StaffOptions { analysts: number; managers: number; logins: StaffLogin[] }

/** Answers of one route class: how many, how many failed, and their times (ms). */
export interface ClassFigures { requests: number; serverErrors: number; networkErrors: number; clientErrors: number; p50: number; p99: number; max: number }

export interface TrafficSummary {
  elapsedMs: number;
  visits: number;
  requests: number;
  /** "GET /browse" → status → count (status 0: no answer: connection refused, timeout). */
  byKind: Record<string, Record<string, number>>;
  signups: number; confirmed: number; unconfirmed: number;
  subscriptions: number; declines: number;
  plays: number; progressReports: number;
  upgrades: number; cancels: number; resumes: number;
  /** Staff: sign-ins, report pages, report data and CSV requests, dashboard pages and their tiles. */
  staffLogins: number; reportViews: number; dashboardViews: number;
  /** Per route class (browse, search, title, plans, checkout, account, play, progress, signup, login, report, dashboard, tile, …). */
  byClass: Record<string, ClassFigures>;
  /** 503 answers without a Retry-After header (an outage must say when to come back). */
  unavailableWithoutRetryAfter: number;
  /** Actions skipped because their route answered 404 (e.g. the catalog not in this build). */
  skipped404: number;
  clientErrors: number; serverErrors: number; networkErrors: number;
  stoppedBy: 'duration' | 'requests' | 'stop';
}

// ── deterministic randomness ─────────────────────────────────────────────────────────────────────────────────────
function mulberry32(a: number) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
type Rng = () => number;
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const SEARCHES = ['stranger', 'love', 'crime', 'christmas', 'documentary', 'star', 'king', 'murder', 'family', 'anime',
  'comedy', 'war', 'space', 'ocean', 'dragon', 'school', 'paris', 'india', 'football', 'music'];
const TYPES = ['movie', 'show'];
function misspell(r: Rng, w: string): string {
  if (w.length < 4) return w + w.at(-1);
  const i = 1 + Math.floor(r() * (w.length - 2));
  const k = r();
  if (k < 0.33) return w.slice(0, i) + w.slice(i + 1);                         // dropped letter
  if (k < 0.66) return w.slice(0, i) + w[i + 1] + w[i] + w.slice(i + 2);       // swapped letters
  return w.slice(0, i) + w[i] + w.slice(i);                                    // doubled letter
}

// ── a browser, roughly ───────────────────────────────────────────────────────────────────────────────────────────
interface Res { status: number; location: string | null; text: string; json?: any }

const MAX_SAMPLES = 50_000;

/** Hidden and preset fields of the first form posting to `action` in `html`. */
export function formFields(html: string, action: string): Record<string, string> | undefined {
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/g;
  for (let m; (m = re.exec(html));) {
    const a = /action="([^"]*)"/.exec(m[1]!)?.[1]?.replace(/&amp;/g, '&');
    if (a !== action && a?.split('?')[0] !== action) continue;
    const out: Record<string, string> = {};
    for (const input of m[2]!.matchAll(/<input\b([^>]*)>/g)) {
      const attrs = input[1]!;
      const name = /name="([^"]*)"/.exec(attrs)?.[1];
      if (!name) continue;
      const type = /type="([^"]*)"/.exec(attrs)?.[1] ?? 'text';
      if ((type === 'radio' || type === 'checkbox') && !/\bchecked\b/.test(attrs)) continue;
      out[name] = (/value="([^"]*)"/.exec(attrs)?.[1] ?? '').replace(/&amp;/g, '&').replace(/&quot;/g, '"');
    }
    return out;
  }
  return undefined;
}

class Browser {
  private jar = new Map<string, string>();
  constructor(private t: Traffic, private address?: string) {}
  get signedIn() { return [...this.jar.keys()].some((k) => k.endsWith('mq_session')); }
  forget() { this.jar.clear(); }

  private store(res: Response) {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim(), value = pair!.slice(eq + 1).trim();
      if (!value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  /** One request (no redirect followed); `kind` names it in the summary. Never throws: status 0 = no answer. */
  async request(kind: string, method: 'GET' | 'POST', pathAndQuery: string, body?: Record<string, string> | object, json = false): Promise<Res> {
    const t = this.t;
    if (!t.takeRequest()) return { status: -1, location: null, text: '' };
    const headers: Record<string, string> = { 'User-Agent': 'marquee-traffic/1', Accept: json ? 'application/json' : 'text/html' };
    if (this.address) headers['X-Forwarded-For'] = this.address;
    if (this.jar.size) headers.Cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let payload: string | undefined;
    if (method === 'POST') {
      headers.Origin = t.origin;
      if (json) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body ?? {}); }
      else { headers['Content-Type'] = 'application/x-www-form-urlencoded'; payload = new URLSearchParams(body as Record<string, string>).toString(); }
    }
    let status = 0;
    const t0 = performance.now();
    try {
      const res = await fetch(t.base + pathAndQuery, { method, headers, body: payload, redirect: 'manual', signal: AbortSignal.timeout(t.requestTimeoutMs) });
      status = res.status;
      if (status === 503 && !res.headers.get('retry-after')) t.noRetryAfter();
      this.store(res);
      const text = await res.text();
      let parsed: any;
      if (json && (res.headers.get('content-type') ?? '').includes('json')) { try { parsed = JSON.parse(text); } catch { /* counted by status */ } }
      return { status, location: res.headers.get('location'), text, json: parsed };
    } catch {
      return { status: 0, location: null, text: '' };
    } finally {
      t.count(kind, status, performance.now() - t0);
    }
  }

  /** A request, then its redirects (GET), as a browser follows them. */
  async go(kind: string, method: 'GET' | 'POST', p: string, body?: Record<string, string>): Promise<Res> {
    let r = await this.request(kind, method, p, body);
    for (let hops = 0; hops < 3 && r.status >= 300 && r.status < 400 && r.location; hops++) {
      const u = new URL(r.location, this.t.base + '/');
      if (u.origin !== this.t.origin) break;
      r = await this.request(`GET ${routeKind(u.pathname)}`, 'GET', u.pathname + u.search);
    }
    return r;
  }
}

/** "/titles/123/play" → "/titles/:id/play" for the summary. */
function routeKind(p: string): string {
  if (/^\/(api\/)?(reports|dashboards)\/[^/]+/.test(p)) return p.replace(/^(\/(?:api\/)?(?:reports|dashboards)\/)[^/.]+/, '$1:id');
  return p.replace(/\/\d+(?=\/|$)/g, '/:id');
}

/** The route class of a request kind ("GET /browse?q=" → search), for per-class times. */
export function routeClass(kind: string): string {
  if (kind.endsWith('(tile)')) return 'tile';
  const [, p = ''] = kind.split(' ');
  if (p.startsWith('/browse?q=')) return 'search';
  if (p.startsWith('/browse')) return 'browse';
  if (/^\/titles\/:id\/play/.test(p)) return 'play';
  if (p.startsWith('/api/play/')) return 'progress';
  if (p.startsWith('/titles/')) return 'title';
  if (p.startsWith('/plans')) return 'plans';
  if (p.startsWith('/subscribe')) return 'checkout';
  if (p.startsWith('/account')) return 'account';
  if (p.startsWith('/signup')) return 'signup';
  if (p.startsWith('/login')) return 'login';
  if (p.startsWith('/dashboards')) return 'dashboard';
  if (p.startsWith('/reports') || p.startsWith('/api/reports')) return 'report';
  return p || kind;
}

const quantile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]! : 0);

// ── people ───────────────────────────────────────────────────────────────────────────────────────────────────────
type State = 'visitor' | 'pending' | 'member' | 'subscriber' | 'analyst' | 'manager';
interface Person {
  index: number; rng: Rng; browser: Browser; state: State; busy: boolean;
  email: string; password: string; plan?: string; cancelling?: boolean;
}

/** What an analyst learns from GET /api/reports: each report's id and parameters. */
interface ReportInfo { id: string; params: { name: string; type: string; default: string | null; min?: string; max?: string; values?: string[]; lookup?: string }[] }
const PLAN_CODES = ['standard_with_ads', 'standard', 'premium'];
const PERIODS = ['3m', '6m', '12m', 'ytd'];
const unescapeHtml = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

const GOOD_CARD = '4242 4242 4242 4242', DECLINED_CARD = '4000 0000 0000 0002';

export class Traffic {
  readonly base: string;
  readonly origin: string;
  readonly requestTimeoutMs: number;
  private people: Person[] = [];
  private rng: Rng;
  private started = Date.now();
  private stopped = false;
  private stopReason: TrafficSummary['stoppedBy'] = 'duration';
  private inFlight = new Set<Promise<void>>();
  private outboxSeen = new Map<string, string>(); // email → confirmation path
  private outboxRead = new Set<string>();
  private titleIds: number[] = [];
  private browseMissing = false;
  private reports: ReportInfo[] = [];
  private dashboardIds: string[] = [];
  private dashboardFilters = new Map<string, { name: string; type: string; options?: [string, string][] }[]>();
  private samples = new Map<string, number[]>();
  private sampleRng: Rng;
  private seen = new Map<string, number>();
  private s: TrafficSummary;
  private timer?: NodeJS.Timeout;
  readonly done: Promise<TrafficSummary>;

  constructor(private o: TrafficOptions) {
    const u = new URL(o.base);
    this.origin = u.origin;
    this.base = u.origin + u.pathname.replace(/\/$/, '');
    this.requestTimeoutMs = o.requestTimeoutMs ?? 15_000;
    this.rng = mulberry32(o.seed);
    this.sampleRng = mulberry32((o.seed ^ 0x5eed) >>> 0); // its own stream: sampling never shifts the people's choices
    const tag = o.emailTag ?? `traffic-${o.seed}-${Date.now().toString(36)}`;
    for (let i = 0; i < o.users; i++) {
      const rng = mulberry32((o.seed * 7919 + i * 104729) >>> 0);
      this.people.push({ index: i, rng, browser: new Browser(this, this.addressOf(i)), state: 'visitor', busy: false,
        email: `${tag}-${i}@example.com`, password: `Quiet-River-${Math.floor(rng() * 1e9).toString(36)}-${i}` });
    }
    const staff = o.staff;
    for (const role of ['analyst', 'manager'] as const) {
      const n = role === 'analyst' ? staff?.analysts ?? 0 : staff?.managers ?? 0;
      const logins = staff?.logins.filter((l) => l.role === role) ?? [];
      if (n && !logins.length) throw new Error(`${n} ${role}s need a ${role} account to sign in with`);
      for (let k = 0; k < n; k++) {
        const i = this.people.length, login = logins[k % logins.length]!;
        this.people.push({ index: i, rng: mulberry32((o.seed * 7919 + i * 104729) >>> 0), browser: new Browser(this, this.addressOf(i)), state: role, busy: false,
          email: login.email, password: login.password });
      }
    }
    this.s = { elapsedMs: 0, visits: 0, requests: 0, byKind: {}, signups: 0, confirmed: 0, unconfirmed: 0, subscriptions: 0,
      declines: 0, plays: 0, progressReports: 0, upgrades: 0, cancels: 0, resumes: 0, staffLogins: 0, reportViews: 0, dashboardViews: 0,
      byClass: {}, unavailableWithoutRetryAfter: 0, skipped404: 0, clientErrors: 0, serverErrors: 0, networkErrors: 0, stoppedBy: 'duration' };
    this.done = new Promise((resolve) => { this.finish = resolve; });
    this.schedule();
  }
  private finish!: (s: TrafficSummary) => void;
  private addressOf(i: number) { return this.o.forwardedFor ? `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` : undefined; }

  summary(): TrafficSummary {
    const byClass: Record<string, ClassFigures> = {};
    for (const [kind, statuses] of Object.entries(this.s.byKind)) {
      const c = (byClass[routeClass(kind)] ??= { requests: 0, serverErrors: 0, networkErrors: 0, clientErrors: 0, p50: 0, p99: 0, max: 0 });
      for (const [st, n] of Object.entries(statuses)) {
        const code = Number(st);
        c.requests += n;
        if (code === 0) c.networkErrors += n; else if (code >= 500) c.serverErrors += n; else if (code >= 400) c.clientErrors += n;
      }
    }
    for (const [cls, xs] of this.samples) {
      const sorted = [...xs].sort((a, b) => a - b), c = byClass[cls];
      if (c) Object.assign(c, { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? 0 });
    }
    return { ...this.s, byKind: structuredClone(this.s.byKind), byClass, elapsedMs: Date.now() - this.started };
  }

  /** Stops starting visits, lets the ones under way end (their requests are bounded by the timeout), then resolves. */
  stop(reason: TrafficSummary['stoppedBy'] = 'stop'): Promise<TrafficSummary> {
    if (!this.stopped) {
      this.stopped = true;
      this.stopReason = reason;
      clearTimeout(this.timer);
      void Promise.allSettled([...this.inFlight]).then(() => {
        this.s.stoppedBy = this.stopReason;
        this.finish(this.summary());
      });
    }
    return this.done;
  }

  /** Reserves one request of the budget; false once it is spent or the run stopped. */
  takeRequest(): boolean {
    if (this.s.requests >= this.o.maxRequests) { if (!this.stopped) void this.stop('requests'); return false; }
    this.s.requests++;
    return true;
  }

  noRetryAfter() { this.s.unavailableWithoutRetryAfter++; }

  count(kind: string, status: number, ms = 0) {
    if (status > 0) {
      // times of answered requests per class; past MAX_SAMPLES a uniform sample of them (reservoir), so a long run stays small
      const cls = routeClass(kind), xs = this.samples.get(cls) ?? [], n = (this.seen.get(cls) ?? 0) + 1;
      this.samples.set(cls, xs);
      this.seen.set(cls, n);
      if (xs.length < MAX_SAMPLES) xs.push(ms);
      else { const j = Math.floor(this.sampleRng() * n); if (j < MAX_SAMPLES) xs[j] = ms; }
    }
    const k = (this.s.byKind[kind] ??= {});
    k[String(status)] = (k[String(status)] ?? 0) + 1;
    if (status === 0) this.s.networkErrors++;
    else if (status >= 500) this.s.serverErrors++;
    else if (status >= 400) this.s.clientErrors++;
  }

  private schedule() {
    const interval = 1000 / this.o.rate;
    const tick = () => {
      if (this.stopped) return;
      if (Date.now() - this.started >= this.o.durationMs) { void this.stop('duration'); return; }
      this.startVisit();
      this.timer = setTimeout(tick, interval);
    };
    this.timer = setTimeout(tick, 0);
  }

  private startVisit() {
    const free = this.people.filter((p) => !p.busy);
    if (!free.length) return;
    const p = pick(this.rng, free);
    p.busy = true;
    this.s.visits++;
    const run = this.visit(p)
      .catch((e) => this.o.log?.(`traffic: visit of person ${p.index} failed: ${e?.message ?? e}`))
      .finally(() => { p.busy = false; this.inFlight.delete(run); });
    this.inFlight.add(run);
  }

  // ── visits ──────────────────────────────────────────────────────────────────────────────────────────────────
  private async visit(p: Person) {
    const r = p.rng();
    switch (p.state) {
      case 'visitor': return r < (this.o.signupShare ?? 0.3) ? this.signUp(p) : this.browse(p);
      case 'pending': return r < 0.5 ? this.confirm(p) : this.browse(p);
      case 'member': return r < 0.85 ? this.subscribe(p) : this.browse(p);
      case 'analyst': return this.analyse(p);
      case 'manager': return this.dashboard(p);
      case 'subscriber':
        if (p.cancelling && r < 0.5) return this.resume(p);
        if (r < 0.6) return this.play(p);
        if (r < 0.72) return this.browse(p);
        if (r < 0.84 && p.plan !== 'premium') return this.upgrade(p);
        if (r < 0.94 && !p.cancelling) return this.cancel(p);
        return this.browse(p);
    }
  }

  /** 404 on a catalog route: this build has no catalog; later visits skip it. */
  private missing(res: Res): boolean {
    if (res.status !== 404) return false;
    this.browseMissing = true;
    this.s.skipped404++;
    return true;
  }

  private learnTitles(html: string) {
    for (const m of html.matchAll(/href="\/titles\/(\d+)"/g)) {
      const id = Number(m[1]);
      if (!this.titleIds.includes(id) && this.titleIds.length < 5000) this.titleIds.push(id);
    }
  }

  private async browse(p: Person) {
    const b = p.browser, r = p.rng;
    if (this.browseMissing) { this.s.skipped404++; await b.go('GET /plans', 'GET', '/plans'); return; }
    const home = await b.go('GET /browse', 'GET', '/browse');
    if (this.missing(home)) return;
    this.learnTitles(home.text);
    const steps = 1 + Math.floor(r() * 3);
    for (let i = 0; i < steps; i++) {
      const k = r();
      let res: Res;
      if (k < 0.45) {
        const word = pick(r, SEARCHES);
        const q = r() < 0.3 ? misspell(r, word) : word;
        res = await b.go('GET /browse?q=', 'GET', `/browse?q=${encodeURIComponent(q)}${r() < 0.3 ? `&type=${pick(r, TYPES)}` : ''}`);
      } else if (k < 0.65) {
        res = await b.go('GET /browse?page=', 'GET', `/browse?page=${1 + Math.floor(r() * 5)}${r() < 0.5 ? `&type=${pick(r, TYPES)}` : ''}`);
      } else if (this.titleIds.length) {
        res = await b.go('GET /titles/:id', 'GET', `/titles/${pick(r, this.titleIds)}`);
      } else continue;
      if (this.missing(res)) return;
      this.learnTitles(res.text);
    }
    if (r() < 0.3) await b.go('GET /plans', 'GET', '/plans');
  }

  private async signUp(p: Person) {
    const b = p.browser;
    await b.go('GET /signup', 'GET', '/signup');
    const res = await b.go('POST /signup', 'POST', '/signup', {
      display_name: `Traffic person ${p.index}`, email: p.email, password: p.password, confirm_password: p.password,
    });
    if (res.status !== 200) return; // 429 (the per-address limit), 400: counted; the person stays a visitor
    this.s.signups++;
    p.state = 'pending';
    if (!this.o.outboxDir) { this.s.unconfirmed++; return this.browse(p); }
    await this.confirm(p);
  }

  private async confirm(p: Person) {
    if (!this.o.outboxDir) return this.browse(p);
    const link = await this.confirmationLink(p.email);
    if (!link) { if (p.state === 'pending' && !this.unconfirmedCounted.has(p.index)) { this.unconfirmedCounted.add(p.index); this.s.unconfirmed++; } return this.browse(p); }
    const b = p.browser;
    const page = await b.go('GET /signup/confirm', 'GET', link);
    const fields = formFields(page.text, '/signup/confirm');
    if (!fields) return;
    const res = await b.go('POST /signup/confirm', 'POST', '/signup/confirm', fields);
    if (b.signedIn && res.status === 200) {
      this.s.confirmed++;
      if (this.unconfirmedCounted.delete(p.index)) this.s.unconfirmed--;
      p.state = 'member';
      if (p.rng() < 0.7) await this.subscribe(p);
    }
  }
  private unconfirmedCounted = new Set<number>();

  /** The newest confirmation link mailed to `email` (the outbox is scanned incrementally; waits up to 2 s). */
  private async confirmationLink(email: string): Promise<string | undefined> {
    const dir = this.o.outboxDir!;
    for (let i = 0; i < 10; i++) {
      const found = this.outboxSeen.get(email);
      if (found) return found;
      let names: string[] = [];
      try { names = (await fs.readdir(dir)).filter((f) => f.endsWith('.eml') && !this.outboxRead.has(f)).sort(); } catch { return undefined; }
      for (const f of names) {
        this.outboxRead.add(f);
        const text = await fs.readFile(path.join(dir, f), 'utf8').catch(() => '');
        const to = /^To: <([^>]+)>/m.exec(text)?.[1];
        const link = /\/signup\/confirm\?token=[\w-]{43}/.exec(text)?.[0];
        if (to && link) this.outboxSeen.set(to, link);
      }
      if (this.outboxSeen.has(email)) return this.outboxSeen.get(email);
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  }

  private async subscribe(p: Person) {
    const b = p.browser, r = p.rng;
    const plan = r() < 0.5 ? 'standard' : r() < 0.6 ? 'standard_with_ads' : 'premium';
    let page = await b.go('GET /plans', 'GET', `/plans?plan=${plan}`);
    let fields = formFields(page.text, '/subscribe');
    if (!fields) { if (/already subscribe/.test(page.text)) { p.state = 'subscriber'; p.plan ??= plan; } return; }
    const card = { card_number: GOOD_CARD, exp: '12/34', cvc: String(100 + Math.floor(r() * 900)) };
    if (r() < (this.o.declineShare ?? 0.2)) {
      const declined = await b.go('POST /subscribe', 'POST', '/subscribe', { ...fields, plan, ...card, card_number: DECLINED_CARD });
      if (declined.status === 402) this.s.declines++;
      // the 402 page carries the next attempt's form (a fresh key); else ask /plans again
      fields = formFields(declined.text, '/subscribe') ?? formFields((page = await b.go('GET /plans', 'GET', `/plans?plan=${plan}`)).text, '/subscribe');
      if (!fields) return;
    }
    const res = await b.request('POST /subscribe', 'POST', '/subscribe', { ...fields, plan, ...card });
    if (res.status === 303 && res.location?.startsWith('/account')) {
      this.s.subscriptions++;
      p.state = 'subscriber'; p.plan = plan; p.cancelling = false;
      await b.go('GET /account', 'GET', res.location);
    }
  }

  private async play(p: Person) {
    const b = p.browser, r = p.rng;
    if (this.browseMissing) { this.s.skipped404++; await b.go('GET /account', 'GET', '/account'); return; }
    if (!this.titleIds.length || r() < 0.3) {
      const home = await b.go('GET /browse', 'GET', '/browse');
      if (this.missing(home)) return;
      this.learnTitles(home.text);
    }
    if (!this.titleIds.length) return;
    const id = pick(r, this.titleIds);
    const title = await b.go('GET /titles/:id', 'GET', `/titles/${id}`);
    if (this.missing(title)) return;
    const player = await b.go('GET /titles/:id/play', 'GET', `/titles/${id}/play`);
    if (this.missing(player)) return;
    if (player.status !== 200) {
      if (player.status === 403 || (player.status === 303 && /login/.test(player.location ?? ''))) p.state = b.signedIn ? 'member' : 'visitor';
      return;
    }
    this.s.plays++;
    let session: unknown;
    let position = 0;
    let duration = Infinity; // known from the first answer: a position past it is a 400
    const reports = 1 + Math.floor(r() * 4);
    for (let i = 0; i < reports; i++) {
      position = Math.min(position + 30 + Math.floor(r() * (i === 0 ? 120 : 600)), duration);
      const res = await b.request('POST /api/play/:id/progress', 'POST', `/api/play/${id}/progress`,
        session === undefined ? { position } : { position, session }, true);
      if (this.missing(res)) return;
      if (res.status !== 200 || !res.json) return;
      this.s.progressReports++;
      session = res.json.session;
      if (Number.isFinite(res.json.duration)) duration = res.json.duration;
      if (res.json.completed || position >= duration) return;
    }
  }

  // ── staff ───────────────────────────────────────────────────────────────────────────────────────────────────
  /** Signs a staff person in (once per browser; again when the session ended); false when it did not work. */
  private async signIn(p: Person): Promise<boolean> {
    const b = p.browser;
    if (b.signedIn) return true;
    const page = await b.go('GET /login', 'GET', '/login');
    const fields = formFields(page.text, '/login');
    if (!fields) return false;
    const res = await b.request('POST /login', 'POST', '/login', { ...fields, email: p.email, password: p.password });
    if (res.status !== 303 || !b.signedIn) {
      if (res.status === 200 || res.status === 400) this.o.log?.(`traffic: ${p.state} ${p.email} could not sign in (${res.status}); check the staff account`);
      return false;
    }
    this.s.staffLogins++;
    return true;
  }

  /** The answer was the sign-in page or a 401/403: the session is gone; sign in again next visit. */
  private lostSession(p: Person, res: Res) {
    if (res.status === 401 || (res.status === 303 && /\/login/.test(res.location ?? '')) || /<form method="post" action="\/login"/.test(res.text)) p.browser.forget();
  }

  /** Parameters an analyst would try: another period, a plan or two, a different top-N; the rest left at defaults. */
  private reportQuery(r: Rng, info: ReportInfo): string {
    const q = new URLSearchParams();
    const now = new Date();
    const month = (back: number) => { const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1)); return d.toISOString().slice(0, 7); };
    const names = new Set(info.params.map((x) => x.name));
    if (names.has('from') && names.has('to') && info.params.find((x) => x.name === 'from')?.type === 'month' && r() < 0.8) {
      const to = Math.floor(r() * 4), span = [2, 5, 11, 23][Math.floor(r() * 4)]!;
      q.set('from', month(to + span)); q.set('to', month(to));
    }
    for (const x of info.params) {
      if (x.name === 'from' || x.name === 'to' || r() < 0.5) continue;
      if (x.type === 'month' && x.name === 'month') q.set('month', month(Math.floor(r() * 6)));
      else if (x.type === 'multi' && x.lookup === 'plans') {
        const pl = PLAN_CODES.filter(() => r() < 0.5);
        for (const code of pl.length ? pl : [pick(r, PLAN_CODES)]) q.append(x.name, code);
      } else if ((x.type === 'multi' || x.type === 'enum') && x.values?.length) q.set(x.name, pick(r, x.values));
      else if (x.type === 'boolean') q.set(x.name, r() < 0.5 ? 'true' : 'false');
      else if (x.type === 'int' && x.min !== undefined && x.max !== undefined) {
        const lo = Number(x.min), hi = Math.min(Number(x.max), lo + 100);
        if (Number.isFinite(lo) && Number.isFinite(hi) && hi >= lo) q.set(x.name, String(lo + Math.floor(r() * (hi - lo + 1))));
      }
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  /** An analyst: a report page with varied parameters, then its data as the page's chart asks for it; sometimes the CSV. */
  private async analyse(p: Person) {
    const b = p.browser, r = p.rng;
    if (!(await this.signIn(p))) return;
    if (!this.reports.length || r() < 0.05) {
      const list = await b.request('GET /api/reports', 'GET', '/api/reports', undefined, true);
      this.lostSession(p, list);
      if (list.status !== 200 || !Array.isArray(list.json?.reports)) return;
      this.reports = list.json.reports;
    }
    if (!this.reports.length) return;
    const info = pick(r, this.reports);
    const query = this.reportQuery(r, info);
    const page = await b.go('GET /reports/:id', 'GET', `/reports/${info.id}${query}`); // canonical URL: a redirect, followed
    this.lostSession(p, page);
    if (page.status !== 200) return;
    this.s.reportViews++;
    await b.request('GET /api/reports/:id', 'GET', `/api/reports/${info.id}${query}`, undefined, true);
    if (r() < 0.15) await b.request('GET /api/reports/:id.csv', 'GET', `/api/reports/${info.id}.csv${query}`);
  }

  /** A manager: a dashboard with a period and sometimes a plan filter, then every tile's data (the page's preloads). */
  private async dashboard(p: Person) {
    const b = p.browser, r = p.rng;
    if (!(await this.signIn(p))) return;
    if (!this.dashboardIds.length || r() < 0.05) {
      const list = await b.request('GET /dashboards', 'GET', '/dashboards');
      this.lostSession(p, list);
      if (list.status !== 200) return;
      this.dashboardIds = [...new Set([...list.text.matchAll(/href="\/dashboards\/([\w-]+)"/g)].map((m) => m[1]!))];
    }
    if (!this.dashboardIds.length) return;
    const id = pick(r, this.dashboardIds);
    // its filters, as the page declares them (learnt from the first view; until then the bookmark without a query)
    const q = new URLSearchParams();
    for (const f of this.dashboardFilters.get(id) ?? []) {
      if (f.type === 'period') { if (r() < 0.7) q.set('period', pick(r, PERIODS)); }
      else if (f.options?.length && r() < 0.4) q.append(f.name, pick(r, f.options)[0]);
    }
    const page = await b.go('GET /dashboards/:id', 'GET', `/dashboards/${id}${q.size ? `?${q}` : ''}`);
    this.lostSession(p, page);
    if (page.status !== 200) return;
    if (!this.dashboardFilters.has(id)) {
      const attr = /<mq-dashboard\b[^>]*\bfilters="([^"]*)"/.exec(page.text)?.[1];
      try { this.dashboardFilters.set(id, attr ? JSON.parse(unescapeHtml(attr)) : []); } catch { this.dashboardFilters.set(id, []); }
    }
    this.s.dashboardViews++;
    const tiles = [...page.text.matchAll(/<link rel="preload" as="fetch"[^>]*href="([^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
    // a browser fetches them a few at a time
    for (let i = 0; i < tiles.length; i += 6) {
      await Promise.all(tiles.slice(i, i + 6).map((t) => b.request('GET /api/reports/:id (tile)', 'GET', t, undefined, true)));
    }
  }

  private async upgrade(p: Person) {
    const b = p.browser;
    const to = p.plan === 'standard' ? 'premium' : pick(p.rng, ['standard', 'premium']);
    const page = await b.go('GET /account/upgrade', 'GET', `/account/upgrade?plan=${to}`);
    const fields = formFields(page.text, '/account/upgrade');
    if (!fields) return;
    const res = await b.request('POST /account/upgrade', 'POST', '/account/upgrade', { plan: to, ...fields });
    if (res.status === 303) { this.s.upgrades++; p.plan = to; if (res.location) await b.go('GET /account', 'GET', res.location); }
  }

  private async cancel(p: Person) {
    const b = p.browser;
    const page = await b.go('GET /account', 'GET', '/account');
    const fields = formFields(page.text, '/account/cancel');
    if (!fields) { if (formFields(page.text, '/account/resume')) p.cancelling = true; return; }
    const res = await b.request('POST /account/cancel', 'POST', '/account/cancel', fields);
    if (res.status === 303) { this.s.cancels++; p.cancelling = true; if (res.location) await b.go('GET /account', 'GET', res.location); }
  }

  private async resume(p: Person) {
    const b = p.browser;
    const page = await b.go('GET /account', 'GET', '/account');
    const fields = formFields(page.text, '/account/resume');
    if (!fields) { p.cancelling = false; return; }
    const res = await b.request('POST /account/resume', 'POST', '/account/resume', fields);
    if (res.status === 303) { this.s.resumes++; p.cancelling = false; if (res.location) await b.go('GET /account', 'GET', res.location); }
  }
}

/** Starts a run; `await t.done` for its summary, `t.stop()` to end it early. */
export function startTraffic(o: TrafficOptions): Traffic {
  return new Traffic(o);
}

export function formatSummary(s: TrafficSummary): string {
  const lines = [
    `traffic: ${s.requests} requests in ${(s.elapsedMs / 1000).toFixed(1)} s (${(s.requests / Math.max(s.elapsedMs / 1000, 0.001)).toFixed(1)}/s), ${s.visits} visits; stopped by ${s.stoppedBy}`,
    `  signups ${s.signups} (confirmed ${s.confirmed}, left at "check your email" ${s.unconfirmed}), subscriptions ${s.subscriptions}, declines ${s.declines}`,
    `  plays ${s.plays} (progress reports ${s.progressReports}), upgrades ${s.upgrades}, cancels ${s.cancels}, resumes ${s.resumes}`,
    ...(s.staffLogins || s.reportViews || s.dashboardViews
      ? [`  staff sign-ins ${s.staffLogins}, report views ${s.reportViews}, dashboard views ${s.dashboardViews}`] : []),
    `  answers 4xx ${s.clientErrors}, 5xx ${s.serverErrors}, no answer ${s.networkErrors}; actions skipped on a 404 route ${s.skipped404}` +
      (s.unavailableWithoutRetryAfter ? `; 503 without Retry-After ${s.unavailableWithoutRetryAfter}` : ''),
    ...formatClasses(s.byClass).map((l) => `  ${l}`),
    '  requests by kind and status:',
  ];
  for (const kind of Object.keys(s.byKind).sort()) {
    const st = s.byKind[kind]!;
    lines.push(`    ${kind.padEnd(30)} ${Object.keys(st).sort().map((c) => `${c === '0' ? 'no answer' : c}×${st[c]}`).join('  ')}`);
  }
  return lines.join('\n');
}

/** The per-class table: requests, p50/p99/max in ms, errors (5xx and no answer) and 4xx. */
export function formatClasses(byClass: Record<string, ClassFigures>): string[] {
  const ms = (x: number) => x.toFixed(x < 10 ? 1 : 0);
  const rows = Object.entries(byClass).sort(([a], [b]) => a.localeCompare(b));
  return [`${'route class'.padEnd(12)} ${'requests'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)} ${'errors'.padStart(6)} ${'4xx'.padStart(5)}`,
    ...rows.map(([cls, c]) => `${cls.padEnd(12)} ${String(c.requests).padStart(8)} ${ms(c.p50).padStart(8)} ${ms(c.p99).padStart(8)} ${ms(c.max).padStart(8)} ` +
      `${String(c.serverErrors + c.networkErrors).padStart(6)} ${String(c.clientErrors).padStart(5)}`)];
}
