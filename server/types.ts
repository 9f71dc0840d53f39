// Shared types for the Hono app: the dependencies every feature receives and the typed request context.
import type { Db } from './db/index.ts';
import type { PublicOrigins } from './auth/origins.ts';

export interface Deps {
  db: Db;
  /** Read-only queries (reports) may go to a replica; defaults to db. */
  readDb?: Db;
  /** Injectable clock: tests move time to exercise timeouts, schedules and billing. */
  now?: () => Date;
  /** Serve cookies with Secure and the __Host- prefix (set when behind HTTPS). */
  secureCookies?: boolean;
  log?: (line: string) => void;
  /**
   * The origins browsers reach this server by (MARQUEE_PUBLIC_URL, else the listen address; settable after listen).
   * Other Host headers are refused and the CSRF check compares Origin with these. Default: loopback names, any port.
   */
  publicOrigins?: PublicOrigins;
  /** Where outgoing mail is written, one .eml file per message (MARQUEE_OUTBOX_DIR; server/mail/outbox.ts). */
  outboxDir?: string;
}

export interface SessionUser {
  id: number;
  email: string;
  displayName: string;
  role: 'admin' | 'analyst' | 'manager' | 'subscriber';
  mustChangePassword: boolean;
}

export type Env = {
  Variables: {
    /** Ours, always generated (the X-Request-Id response header). */
    requestId: string;
    /** A well-formed X-Request-Id the client sent, kept beside ours (logs, audit_log.client_request_id). */
    clientRequestId?: string;
    deps: Required<Pick<Deps, 'db' | 'readDb' | 'now' | 'log' | 'publicOrigins' | 'outboxDir'>> & Deps;
    user?: SessionUser;
    sessionIdHash?: Buffer;
  };
};
