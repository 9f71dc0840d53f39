// The public origin(s) this server answers as; host.ts refuses any other Host (README "Endpoints").
// Taking "our origin" from the request's Host let DNS rebinding through the CSRF check: a page on evil.example whose
// name is made to resolve to this server sends `Host: evil.example:3100` and `Origin: http://evil.example:3100`, which
// match each other. So the allowed names are configuration (MARQUEE_PUBLIC_URL), defaulting to the listen address,
// and a request for any other Host is refused before any route runs; the CSRF check compares Origin with them.
import os from 'node:os';

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);
const HOST_RE = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/;

export { parseOrigin } from '../config.ts';
import { parseOrigin } from '../config.ts';

const bracket = (address: string) => (address.includes(':') ? `[${address}]` : address);

/**
 * The default public origins for a server listening on host:port: that address, plus `localhost` when it is a
 * loopback address, plus every interface address (and the loopback names) when it listens on all interfaces.
 */
export function listenOrigins(host: string, port: number): string[] {
  const names = new Set<string>();
  const h = host.trim().toLowerCase();
  if (h === '' || h === '0.0.0.0' || h === '::' || h === '[::]') {
    for (const n of LOOPBACK_NAMES) names.add(n);
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) if (!a.address.includes('%')) names.add(bracket(a.address));
    }
  } else {
    names.add(bracket(h.replace(/^\[|\]$/g, '')));
    if (h === 'localhost' || /^127\./.test(h) || h === '::1' || h === '[::1]') { names.add('localhost'); names.add('127.0.0.1'); }
  }
  return [...names].map((n) => `http://${n}:${port}`);
}

/**
 * The allowed origins of one app, settable after listen (PORT=0 picks the port then). Without a list (tests,
 * benchmarks: `new PublicOrigins()`) it accepts the loopback names on any port, and a request's own origin is
 * `http://<its Host>` — what app.request('http://localhost/…') and a test server on 127.0.0.1:<port> use.
 */
export class PublicOrigins {
  #origins = new Set<string>();
  #hosts = new Set<string>();
  #loopbackAnyPort: boolean;

  constructor(origins?: readonly string[]) {
    this.#loopbackAnyPort = origins === undefined;
    if (origins) this.set(origins);
  }

  /** Replaces the list (e.g. after listen, when the port is known). */
  set(origins: readonly string[]): void {
    const parsed = origins.map((o) => parseOrigin(o, 'public origin'));
    this.#origins = new Set(parsed);
    this.#hosts = new Set();
    for (const o of parsed) {
      const u = new URL(o);
      this.#hosts.add(u.host);
      this.#hosts.add(`${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`);
    }
    this.#loopbackAnyPort = false;
  }

  get list(): string[] {
    return this.#loopbackAnyPort ? ['http://localhost:<any port>', 'http://127.0.0.1:<any port>', 'http://[::1]:<any port>'] : [...this.#origins];
  }

  allowsHost(host: string): boolean {
    const h = host.toLowerCase();
    if (this.#loopbackAnyPort) {
      const m = HOST_RE.exec(h);
      return !!m && LOOPBACK_NAMES.has(m[1]);
    }
    return this.#hosts.has(h);
  }

  /** Whether a request's Origin is ours; `host` is the request's (already allowed) Host. */
  isOwnOrigin(origin: string, host: string, secure: boolean): boolean {
    const h = host.toLowerCase();
    if (secure && origin === `https://${h}`) return true;
    return this.#loopbackAnyPort ? origin === `http://${h}` : this.#origins.has(origin);
  }

  /** The origin to write into links sent by mail for a request to `host`: the configured one for it, if any. */
  originFor(host: string, secure: boolean): string {
    const h = host.toLowerCase();
    for (const o of this.#origins) {
      const u = new URL(o);
      if (u.host === h || `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}` === h) return o;
    }
    return `${secure ? 'https' : 'http'}://${h}`;
  }
}
