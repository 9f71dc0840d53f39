// Shared types for the Hono app: the dependencies every feature receives and the typed request context.
import type { Db, ChangeCache } from './db/index.ts';
import type { Config } from './config.ts';
import type { Catalog } from './reports/catalog.ts';
import type { Dashboard } from './dashboards/catalog.ts';
import type { ResultCache } from './reports/result.ts';
import type { BrowseCache } from './browse/catalog.ts';
import type { VisitRecorder } from './visits.ts';
import type { PublicOrigins } from './auth/origins.ts';
import type { PaymentGateway } from './billing/gateway.ts';
import type { Role } from './auth/roles.ts';

/** What createApp needs: only `db` is required; everything else has a default (see createApp). */
export interface Deps {
  db: Db;
  /** db, or db with its readTx (report runs) sent to the read replica (server/db/replica.ts); defaults to db. */
  readDb?: Db;
  /** Injectable clock: tests move time to exercise timeouts, schedules and billing. */
  now?: () => Date;
  /** The configuration read at start (server/config.ts); defaults to loadConfig({}), the documented defaults. */
  config?: Config;
  /** The report catalog this app serves (validated by main.ts at start); defaults to sql/reports (or config.reportsDir). */
  catalog?: Catalog;
  /** The dashboards this app serves; defaults to views/dashboards (or config.dashboardsDir), checked against catalog. */
  dashboards?: Map<string, Dashboard>;
  /** In-memory caches (session lookups, report results); one set per app unless given. */
  caches?: AppCaches;
  log?: (line: string) => void;
  /** Page views are recorded into `visits` through this buffer (server/visits.ts) when given: main.ts does; tests opt in. */
  visits?: VisitRecorder | null;
  /**
   * The origins browsers reach this server by (MARQUEE_PUBLIC_URL, else the listen address; settable after listen).
   * Other Host headers are refused and the CSRF check compares Origin with these. Default: loopback names, any port.
   */
  publicOrigins?: PublicOrigins;
  /** The payment gateway live billing charges through; defaults to the built-in test gateway (server/billing/gateway.ts). */
  gateway?: PaymentGateway;
}

export interface AppCaches {
  /** Session lookups by the hash of the cookie, kept while the change feed says sessions and users are unchanged. */
  sessions: ChangeCache<any>;
  /** Report results by report, definition and parameters, kept while the marts' generations are unchanged;
   *  null when config.reportCache is off. */
  reports: ResultCache | null;
  /** /browse's shelves, filter choices and popularity ranking (server/browse/catalog.ts), created on first use. */
  browse?: BrowseCache;
}

export interface SessionUser {
  id: number;
  email: string;
  displayName: string;
  role: Role;
  mustChangePassword: boolean;
}

export type AppDeps = Required<Deps>;

export type Env = {
  Variables: {
    /** Ours, always generated (the X-Request-Id response header). */
    requestId: string;
    /** A well-formed X-Request-Id the client sent, kept beside ours (logs, audit_log.client_request_id). */
    clientRequestId?: string;
    deps: AppDeps;
    user?: SessionUser;
    sessionIdHash?: Buffer;
  };
};
