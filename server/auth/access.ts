// The route-by-role table: every route of the product, who may use it, in one place. The authorize middleware
// enforces it for every request (deny by default: a route missing here answers 404), and the role-matrix test walks it.
import type { MiddlewareHandler } from 'hono';
import type { Env, SessionUser } from '../types.ts';
import { HttpError } from '../errors.ts';
import { STAFF, type Role } from './roles.ts';

export { ROLES, STAFF, type Role } from './roles.ts';

/** public: anyone; authenticated: any signed-in user; otherwise the roles listed. */
export type Access = 'public' | 'authenticated' | readonly Role[];

export interface RouteRule {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Hono-style path: literal segments, `:param` for one segment, a trailing `*` for the rest. */
  path: string;
  access: Access;
  /** An example URL for the role-matrix test (defaults to path with params filled by the test). */
  example?: string;
}

/** A form page: GET shows it, POST to the same path submits it (two rows of the table, one access). */
const form = (path: string, access: Access): RouteRule[] => [{ method: 'GET', path, access }, { method: 'POST', path, access }];

export const ROUTES: RouteRule[] = [
  { method: 'GET', path: '/', access: 'public' },
  { method: 'GET', path: '/healthz', access: 'public' },
  { method: 'GET', path: '/readyz', access: 'public' },
  { method: 'GET', path: '/static/*', access: 'public', example: '/static/app.css' },
  // Features add their routes below, grouped by feature.
  // reports (README "Report engine"): staff may open reports (each report's @roles is checked again by the engine);
  // refresh is admin-only
  { method: 'GET', path: '/reports', access: STAFF },
  { method: 'GET', path: '/reports/:id', access: STAFF, example: '/reports/mrr_trend' },
  { method: 'POST', path: '/reports/refresh', access: ['admin'] },
  { method: 'GET', path: '/api/reports', access: STAFF },
  { method: 'GET', path: '/api/reports/:id', access: STAFF, example: '/api/reports/mrr_trend' },
  { method: 'GET', path: '/api/marts', access: STAFF },
  { method: 'POST', path: '/api/marts/refresh', access: ['admin'] },
  // theme and dashboards (README "Dashboards, charts, theme and the browser bundle")
  { method: 'POST', path: '/theme', access: 'public' },
  { method: 'GET', path: '/dashboards', access: STAFF },
  { method: 'GET', path: '/dashboards/:id', access: STAFF, example: '/dashboards/executive_overview' },
  // accounts (README "Accounts, roles and sessions"): sign-in, sign-up, the user's own account
  ...form('/login', 'public'),
  { method: 'POST', path: '/logout', access: 'public' },
  ...form('/signup', 'public'),
  ...form('/signup/confirm', 'public'),
  ...form('/account', 'authenticated'),
  ...form('/account/password', 'authenticated'),
  { method: 'POST', path: '/account/sign-out-everywhere', access: 'authenticated' },
  // live billing (README "Live billing"): plans for anyone, checkout and the subscription's own actions for
  // subscribers
  { method: 'GET', path: '/plans', access: 'public' },
  { method: 'POST', path: '/subscribe', access: ['subscriber'] },
  { method: 'GET', path: '/account/upgrade', access: ['subscriber'], example: '/account/upgrade?plan=premium' },
  { method: 'POST', path: '/account/upgrade', access: ['subscriber'] },
  { method: 'POST', path: '/account/downgrade', access: ['subscriber'] },
  { method: 'POST', path: '/account/cancel', access: ['subscriber'] },
  { method: 'POST', path: '/account/resume', access: ['subscriber'] },
  { method: 'POST', path: '/account/card', access: ['subscriber'] },
  { method: 'GET', path: '/account/receipts/:paymentId', access: ['subscriber'] },
  // user administration (README "Accounts, roles and sessions")
  { method: 'GET', path: '/admin/users', access: ['admin'] },
  { method: 'GET', path: '/admin/users/new', access: ['admin'] },
  { method: 'POST', path: '/admin/users', access: ['admin'] },
  ...form('/admin/users/:id', ['admin']),
  { method: 'POST', path: '/admin/users/:id/reset-password', access: ['admin'] },
  { method: 'POST', path: '/admin/users/:id/disable', access: ['admin'] },
  { method: 'POST', path: '/admin/users/:id/enable', access: ['admin'] },
  { method: 'POST', path: '/admin/users/:id/sign-out', access: ['admin'] },
  { method: 'GET', path: '/admin/audit', access: ['admin'] },
  // billing staff side (README "Billing jobs and the staff side"): a customer's timeline, payments and refunds;
  // managers read, admins act.
  // User 1 exists in the role-matrix test (the first user it creates); an empty form answers 303 with its error.
  { method: 'GET', path: '/admin/subscribers/:id', access: ['admin', 'manager'], example: '/admin/subscribers/1' },
  { method: 'POST', path: '/admin/subscribers/:id/refund', access: ['admin'], example: '/admin/subscribers/1/refund' },
  { method: 'POST', path: '/admin/subscribers/:id/cancel', access: ['admin'], example: '/admin/subscribers/1/cancel' },
  // catalog, play and visits (README "Catalog, play and visits"): the shop window is public; playing needs an account
  // (and, checked by the handler, a subscription in active or past_due)
  { method: 'GET', path: '/browse', access: 'public', example: '/browse?q=stranger+thigns&type=show' },
  { method: 'GET', path: '/titles/:id', access: 'public', example: '/titles/1' },
  { method: 'GET', path: '/titles/:id/poster.svg', access: 'public', example: '/titles/1/poster.svg' },
  { method: 'GET', path: '/titles/:id/play', access: 'authenticated', example: '/titles/1/play' },
  { method: 'POST', path: '/api/play/:titleId/progress', access: 'authenticated', example: '/api/play/1/progress' },
  // sharing: embed links (managed by admins and managers; opened by anyone holding a valid token, checked by the
  // handler), personal API tokens on /account, the OpenAPI description
  ...form('/embeds', ['admin', 'manager']),
  { method: 'POST', path: '/embeds/revoke', access: ['admin', 'manager'] },
  { method: 'GET', path: '/embed/reports/:id', access: 'public' },
  { method: 'GET', path: '/embed/reports/:id/data', access: 'public' },
  { method: 'GET', path: '/embed/dashboards/:id', access: 'public' },
  { method: 'GET', path: '/embed/dashboards/:id/data/:tile', access: 'public' },
  { method: 'POST', path: '/account/tokens', access: 'authenticated' },
  { method: 'POST', path: '/account/tokens/revoke', access: 'authenticated' },
  { method: 'GET', path: '/api/openapi.json', access: 'authenticated' },
  // sharing (README, "Sharing: snapshots and digests"): a snapshot is checked again against the page it shows
  // (the dashboard's roles, the report's @roles); digests are for managers and admins
  { method: 'GET', path: '/snapshot', access: STAFF, example: '/snapshot?path=%2Freports%2Fmrr_trend' },
  { method: 'GET', path: '/digests', access: ['admin', 'manager'] },
  { method: 'POST', path: '/digests', access: ['admin', 'manager'] },
  { method: 'POST', path: '/digests/:id/delete', access: ['admin', 'manager'], example: '/digests/1/delete' },
];

function compile(rule: RouteRule) {
  const parts = rule.path.split('/').map((seg) => seg === '*' ? '.*' : seg.startsWith(':') ? '[^/]+' : seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('/')}$`);
}
const compiled = () => ROUTES.map((r) => ({ rule: r, re: compile(r) }));
let table: ReturnType<typeof compiled> | undefined;

export function findRule(method: string, path: string): RouteRule | undefined {
  table ??= compiled();
  const m = method === 'HEAD' ? 'GET' : method;
  return table.find((t) => t.rule.method === m && t.re.test(path))?.rule;
}

export function allowed(access: Access, user: SessionUser | undefined): boolean {
  if (access === 'public') return true;
  if (!user) return false;
  if (access === 'authenticated') return true;
  return access.includes(user.role);
}

/** Runs after the session middleware has set c.get('user'). */
export const authorize: MiddlewareHandler<Env> = async (c, next) => {
  const rule = findRule(c.req.method, c.req.path);
  if (!rule) {
    // Unknown path: a 404 (or 405 when the path exists for another method), never a hint about protected routes.
    const other = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].some((m) => m !== c.req.method && findRule(m, c.req.path));
    throw new HttpError(other ? 405 : 404, other ? `${c.req.method} is not allowed on ${c.req.path}` : `Nothing at ${c.req.path}`);
  }
  const user = c.get('user');
  if (allowed(rule.access, user)) return next();
  if (!user) {
    if (c.req.method === 'GET' && !c.req.path.startsWith('/api/')) {
      const url = new URL(c.req.url);
      return c.redirect(`/login?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
    }
    throw new HttpError(401, 'Sign in required');
  }
  throw new HttpError(403, `Your role (${user.role}) does not have access to ${c.req.path}`);
};
