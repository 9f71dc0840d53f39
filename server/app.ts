// createApp(deps): the whole HTTP surface, composed from one sub-app per feature. No port: main.ts listens.
import { Hono } from 'hono';
import { randomUUID } from 'node:crypto';
import type { AppDeps, Deps, Env } from './types.ts';
import { defaultConfig } from './config.ts';
import { loadCatalog, DEFAULT_REPORTS_DIR, type Catalog } from './reports/catalog.ts';
import { loadDashboards } from './dashboards/catalog.ts';
import { onError, errorResponse, HttpError } from './errors.ts';
import { CLIENT_REQUEST_ID } from './request-id.ts';
import { health } from './health.ts';
import { page, html } from './html.ts';
import { authorize } from './auth/access.ts';
import { csrfGuard } from './auth/csrf.ts';
import { PublicOrigins } from './auth/origins.ts';
import { hostGuard } from './auth/host.ts';
import { sessionMiddleware } from './auth/session.ts';
import { login } from './auth/login.ts';
import { signup } from './auth/signup.ts';
import { account } from './account/index.ts';
import { adminUsers } from './admin/users.ts';
import { adminAudit } from './admin/audit-page.ts';
import { adminSubscribers } from './admin/subscribers.ts';
import { securityHeaders } from './security.ts';
import { compressText } from './compress.ts';
import { rejectNulInQuery, MAX_BODY_BYTES } from './input-guard.ts';
import { bodyLimit } from 'hono/body-limit';
import { staticFiles } from './static.ts';
import { theme } from './theme.ts';
import { dashboardRoutes } from './dashboards/index.ts';
import { reportRoutes } from './reports/routes.ts';
import { billing } from './billing/routes.ts';
import { createTestGateway } from './billing/gateway.ts';
import { browseRoutes } from './browse/index.ts';
import { playRoutes } from './browse/play.ts';
import { recordVisits } from './record-visits.ts';
import { bearerAuth, apiTokenRoutes } from './auth/api-tokens.ts';
import { embedRoutes } from './sharing/embeds.ts';
import { openApiRoutes } from './sharing/openapi.ts';
import { sharing } from './sharing/routes.ts';

// The files' catalog, parsed once per directory and process for apps not given one (tests); main.ts passes its own.
const parsedCatalogs = new Map<string, Catalog>();

/** Everything a request may need, with the defaults filled in: only `db` is required. */
export function appDeps(deps: Deps): AppDeps {
  const config = deps.config ?? defaultConfig();
  const dir = config.reportsDir ?? DEFAULT_REPORTS_DIR;
  const catalog = deps.catalog ?? parsedCatalogs.get(dir) ?? parsedCatalogs.set(dir, loadCatalog(dir)).get(dir)!;
  return {
    db: deps.db,
    readDb: deps.readDb ?? deps.db,
    now: deps.now ?? (() => new Date()),
    log: deps.log ?? ((l: string) => console.error(l)),
    config,
    catalog,
    // given a catalog of its own (a test's fixture reports), the dashboard files are not checked against it
    dashboards: deps.dashboards ?? loadDashboards(config.dashboardsDir, deps.catalog ? undefined : catalog),
    caches: deps.caches ?? { sessions: new Map(), reports: config.reportCache ? new Map() : null },
    visits: deps.visits ?? null,
    // without a list (tests, benchmarks): the loopback names on any port
    publicOrigins: deps.publicOrigins ?? new PublicOrigins(config.publicUrls),
    gateway: deps.gateway ?? createTestGateway(deps.db),
  };
}

export function createApp(deps: Deps) {
  const full = appDeps(deps);
  const app = new Hono<Env>();

  // Our own id for every request, always generated: a client's X-Request-Id could repeat another request's id. A
  // well-formed one (a proxy's or a caller's correlation id) is kept beside ours: in log lines and audit rows.
  app.use('*', async (c, next) => {
    c.set('requestId', randomUUID());
    const incoming = c.req.header('x-request-id');
    if (incoming && CLIENT_REQUEST_ID.test(incoming)) c.set('clientRequestId', incoming);
    c.set('deps', full);
    await next();
    // on the answer's own headers: c.header() after the handler would rebuild the answer around its body as a stream
    c.res.headers.set('X-Request-Id', c.get('requestId'));
  });
  // Page views go to the visits buffer once their answer is known (server/visits.ts: HTML 2xx GETs, no bots).
  app.use('*', recordVisits);
  // Text answers (pages, JSON, CSV) compressed by Accept-Encoding, after every other middleware set its headers.
  app.use('*', compressText);
  // CSP and the other security headers on every response, error pages included.
  app.use('*', securityHeaders);
  // Only our own host names (MARQUEE_PUBLIC_URL / the listen address): DNS rebinding gets a 421 (server/auth/origins.ts).
  app.use('*', hostGuard);
  // A NUL in the query string is a 400 before any route can hand it to PostgreSQL (server/input-guard.ts).
  app.use('*', rejectNulInQuery);
  // Forms and JSON bodies are read whole into memory: cap them before anything parses one (1 MiB is far above any form).
  // GET and HEAD skip it: no route reads their body, and merely asking for one builds a full Request object per request
  // (a tenth of the CPU time of a cached report).
  const limitBody = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: () => { throw new HttpError(413, `The request body is too large (at most ${MAX_BODY_BYTES / 1024 / 1024} MiB)`); } });
  app.use('*', (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limitBody(c, next)));

  // One CSRF guard for every state-changing request, then the session (sets c.get('user')), then the role table.
  app.use('*', csrfGuard);
  app.use('*', sessionMiddleware);
  // On /api/*, `Authorization: Bearer <API token>` acts as the token's owner (server/auth/api-tokens.ts).
  app.use('/api/*', bearerAuth);
  // Sessions (server/auth) set c.get('user') before this point.
  app.use('*', authorize);

  // Bundles are served precompressed (.br/.gz written by views/build.ts) and long-cached: see server/static.ts.
  app.use('/static/*', staticFiles);

  app.route('/', health);
  app.route('/', login);
  app.route('/', signup);
  app.route('/', account);
  app.route('/', billing);
  app.route('/', adminUsers);
  app.route('/', adminAudit);
  app.route('/', adminSubscribers);
  app.route('/', theme);
  app.route('/', dashboardRoutes);
  app.route('/', reportRoutes);
  app.route('/', browseRoutes);
  app.route('/', playRoutes);
  app.route('/', apiTokenRoutes);
  app.route('/', embedRoutes);
  app.route('/', openApiRoutes);
  app.route('/', sharing);

  app.get('/', async (c) => {
    // Signed-in people land where their work is: staff on the dashboards, subscribers on the catalog.
    const user = c.get('user');
    if (user) return c.redirect(user.role === 'subscriber' ? '/browse' : '/dashboards', 303);
    return c.html(page(c, {
    title: 'Home',
    body: html`<main class="narrow"><h1>Marquee</h1>
      <p>Subscription analytics and operations for the streaming service.</p>
      <p><a class="button" href="/browse">Browse the catalog</a> <a class="button secondary" href="/login">Sign in</a>
      <a class="button secondary" href="/signup">Create an account</a></p></main>`,
    }));
  });

  app.notFound((c) => errorResponse(c, 404, `Nothing at ${c.req.path}`));
  app.onError(onError);
  return app;
}

