// The role matrix: every row of the route table (server/auth/access.ts), including rows other features add later,
// requested as anonymous and as each role, against the status the table promises:
//   allowed -> what the route answers that role for a valid request: 2xx or 3xx (a 404 from a placeholder id, a 400
//     from an empty form or a 503 from a mart never built would hide whether the route works), and not the
//     middleware's redirect to /login;
//   denied, anonymous -> 303 to /login?next=… for a page GET, 401 otherwise; denied, signed in -> 403.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { ROUTES, ROLES, allowed, findRule, type Role, type RouteRule } from '../server/auth/access.ts';
import { isApi } from '../server/errors.ts';
import { loadCatalog, ensureMarts, refreshMarts } from '../server/reports/engine.ts';
import type { SessionUser } from '../server/types.ts';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createApiToken } from '../server/auth/api-tokens.ts';
import sql from 'sql-template-tag';

const t = useDatabase(test);

/**
 * A URL for the rule: its example, or its path with :params and a trailing * filled in — `params` gives real values
 * (the matrix passes the id of a real target user), anything else gets a placeholder that exists nowhere, so a new
 * row whose :param is not a user id fails here until it gives an `example`.
 */
export function exampleUrl(rule: RouteRule, params: Record<string, string> = {}): string {
  if (rule.example) return rule.example;
  return rule.path.split('/').map((seg) => seg === '*' ? 'example' : seg.startsWith(':') ? (params[seg.slice(1)] ?? '999999999') : seg).join('/');
}

let seq = 0;
const fresh = (what: string) => `${what}-${process.pid}-${++seq}`;

/**
 * A valid body for each state-changing row (rows not listed send an empty form / `{}`): an allowed request must
 * succeed, so a POST needs what its form asks for. `who` is the acting user (undefined: anonymous); `login` an account
 * anonymous may sign in to. Adding a POST row whose empty request is not a success = adding its body here.
 */
type Actor = { email: string; password: string } | undefined;
const BODIES: Record<string, (who: Actor, login: { email: string; password: string }) => Record<string, string | number>> = {
  'POST /theme': () => ({ theme: 'light' }),
  'POST /login': (who, login) => ({ email: (who ?? login).email, password: (who ?? login).password }),
  'POST /signup': () => {
    const pw = fresh('long enough password');
    return { display_name: 'Matrix Viewer', email: `${fresh('signup')}@matrix.example`, password: pw, confirm_password: pw };
  },
  'POST /account': () => ({ display_name: fresh('Renamed') }),
  'POST /account/password': (who) => {
    if (!who) return {}; // anonymous is refused before the form is read
    const next = fresh('a new long password');
    const body = { current_password: who!.password, new_password: next, confirm_password: next };
    who!.password = next; // later rows (and later runs of this row) sign in with the new one
    return body;
  },
  'POST /admin/users': () => ({ email: `${fresh('created')}@matrix.example`, display_name: 'Created By Matrix', role: 'analyst' }),
  'POST /admin/users/:id': () => ({ display_name: fresh('Target'), role: 'subscriber', status: 'active' }),
  'POST /signup/confirm': () => ({ token: signupTokens.pop()! }),
  // live billing, in table order: subscribe, upgrade, schedule a downgrade, cancel, resume, replace the card
  'POST /subscribe': () => ({ plan: 'standard', ...CARD, idempotency_key: formKey() }),
  'POST /account/upgrade': () => ({ plan: 'premium', idempotency_key: formKey() }),
  'POST /account/downgrade': () => ({ plan: 'standard', idempotency_key: formKey() }),
  'POST /account/cancel': () => ({ idempotency_key: formKey() }),
  'POST /account/resume': () => ({ idempotency_key: formKey() }),
  'POST /account/card': () => ({ ...CARD, idempotency_key: formKey() }),
  'POST /api/play/:titleId/progress': () => ({ position: 60 }),
  // sharing: a link to a report every staff role may see; revoke the acting user's own link / API token (made below)
  'POST /embeds': () => ({ resource: 'report:mrr_trend', locked: 'from=2026-01', free: 'to', days: '2' }),
  'POST /embeds/revoke': (who): Record<string, string> => (who && ownLinks.has(who.email) ? { id: ownLinks.get(who.email)! } : {}),
  'POST /account/tokens': () => ({ name: fresh('matrix token'), days: '30' }),
  'POST /account/tokens/revoke': (who): Record<string, number> => (who && ownTokens.has(who.email) ? { id: ownTokens.get(who.email)! } : {}),
};
/** Per acting user's email: an embed link they made and an API token of theirs, for the revoke rows. */
const ownLinks = new Map<string, string>();
const ownTokens = new Map<string, number>();
/** Working embed links (made through POST /embeds as the admin), for the public /embed rows. */
const embedUrls: Record<string, string> = {};
/** A form's idempotency key, as the page would render it. */
const formKey = () => randomBytes(16).toString('hex');
const CARD = { card_number: '4242 4242 4242 4242', exp: '12/39', cvc: '123' };

/** Confirmation links the /signup/confirm rows follow (each POST uses one up; the GET only looks). */
const signupTokens: string[] = [];
async function makeSignupTokens(n: number) {
  for (let i = 0; i < n; i++) {
    const token = randomBytes(32).toString('base64url');
    await t.db.query(sql`INSERT INTO signup_requests (token_hash, email, display_name, password_hash, created_at, expires_at)
      VALUES (${createHash('sha256').update(token).digest()}, ${`${fresh('confirm')}@matrix.example`}, 'Matrix Confirm',
              'sha256$00', now(), now() + interval '1 day')`);
    signupTokens.push(token);
  }
}

/** Rows whose valid request needs a URL made at run time (a token, the id of a row made by an earlier row). */
const URLS: Record<string, (users: Map<Role, SessionUser>) => Promise<string> | string> = {
  'GET /signup/confirm': () => `/signup/confirm?token=${signupTokens[0]}`,
  'GET /account/receipts/:paymentId': async (users) => {
    const p = await t.db.one<{ id: number }>(sql`SELECT id FROM payments WHERE user_id = ${users.get('subscriber')!.id} ORDER BY id LIMIT 1`);
    return `/account/receipts/${p?.id ?? 999999999}`;
  },
  // the catalog rows act on a real title (made below)
  'GET /titles/:id': () => `/titles/${titleId}`,
  'GET /titles/:id/poster.svg': () => `/titles/${titleId}/poster.svg`,
  'GET /titles/:id/play': () => `/titles/${titleId}/play`,
  'POST /api/play/:titleId/progress': () => `/api/play/${titleId}/progress`,
  'GET /embed/reports/:id': () => embedUrls.report,
  'GET /embed/reports/:id/data': () => embedUrls.report.replace('?', '/data?'),
  'GET /embed/dashboards/:id': () => embedUrls.dashboard,
  'GET /embed/dashboards/:id/data/:tile': () => embedUrls.dashboard.replace('?', '/data/0?'),
};
let titleId = 0;

function requestInit(rule: RouteRule, url: string, cookie: string, body: Record<string, string | number> | undefined): RequestInit {
  const headers: Record<string, string> = { Accept: 'text/html,application/json' };
  if (cookie) headers.Cookie = cookie;
  if (rule.method === 'GET') return { method: 'GET', headers };
  headers.Origin = TEST_ORIGIN;
  if (isApi(new URL(url, TEST_ORIGIN).pathname)) return { method: rule.method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) };
  return { method: rule.method, headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(Object.entries(body ?? {}).map(([k, v]) => [k, String(v)])).toString() };
}

test('the route table is well formed: methods, paths, access, no duplicate rows', () => {
  const seen = new Set<string>();
  for (const r of ROUTES) {
    const key = `${r.method} ${r.path}`;
    assert.ok(!seen.has(key), `duplicate row ${key}`);
    seen.add(key);
    assert.ok(r.path.startsWith('/'), key);
    assert.ok(r.access === 'public' || r.access === 'authenticated' || (Array.isArray(r.access) && r.access.length > 0
      && r.access.every((x) => ROLES.includes(x))), `${key}: access ${JSON.stringify(r.access)}`);
    if (r.example) assert.ok(findRule(r.method, new URL(r.example, TEST_ORIGIN).pathname), `${key}: example ${r.example} matches no row`);
  }
  assert.ok(ROUTES.length >= 20, 'the table has the product\'s routes');
});

test('every route × anonymous and every role answers as the table says', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  // Every mart built once, so report pages answer what they answer in service (not 503 "not refreshed yet").
  const catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  const users = new Map<Role, SessionUser>();
  const credentials = new Map<Role, { email: string; password: string }>();
  for (const role of ROLES) {
    const u = await createUser(t.db, { role });
    users.set(role, { id: u.id, email: u.email, displayName: u.name, role, mustChangePassword: false });
    credentials.set(role, { email: u.email, password: u.password });
  }
  // The user the /admin/users/:id rows act on, and an account anonymous signs in to.
  const target = await createUser(t.db, { role: 'subscriber' });
  const login = await createUser(t.db, { role: 'subscriber' });
  await makeSignupTokens(ROLES.length + 2);
  // A title for the catalog rows, and a subscription in active for every signed-in staff user: playing is for entitled
  // viewers whatever the role (the refusal of others is tested in play.test.ts). The subscriber subscribes through
  // POST /subscribe, a row that comes before the catalog's in the table.
  titleId = (await t.db.one<{ id: number }>(sql`INSERT INTO titles (show_id, type, title, release_year, rating, duration_minutes)
    VALUES ('matrix1', 'Movie', 'Matrix Test Film', 2020, 'PG', 100) RETURNING id`))!.id;
  for (const u of users.values()) {
    if (u.role === 'subscriber') continue;
    await t.db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
      VALUES (${u.id}, (SELECT id FROM plans ORDER BY id LIMIT 1), 'active', now(), now() + interval '1 month')`);
  }
  // Sharing: links anyone may open, and for each user a link / token of their own to revoke.
  const adminCookie = await sessionCookie(t.db, users.get('admin')!.id);
  for (const [kind, resource] of [['report', 'report:mrr_trend'], ['dashboard', 'dashboard:executive_overview']]) {
    const made = await app.request('/embeds', requestInit(ROUTES.find((r) => r.path === '/embeds' && r.method === 'POST')!, '/embeds', adminCookie, { resource }));
    const id = /created=([0-9a-f-]{36})/.exec(made.headers.get('location') ?? '')?.[1];
    const row = await t.db.one<{ token: string; resource_id: string }>(sql`SELECT token, resource_id FROM embed_links WHERE id = ${id ?? null}::uuid`);
    assert.ok(row, `an embed link for ${resource}: ${made.status}`);
    embedUrls[kind] = `/embed/${kind}s/${row!.resource_id}?t=${row!.token}`;
  }
  for (const [role, u] of users) {
    const audit = { actorId: u.id, ip: null, requestId: 'role-matrix', now: new Date() };
    ownTokens.set(u.email, (await createApiToken(t.db, audit, u.id, { name: 'matrix', days: 1 })).id);
    if (role !== 'admin' && role !== 'manager') continue;
    const link = randomUUID();
    await t.db.query(sql`INSERT INTO embed_links (id, resource_kind, resource_id, token, created_by, created_at, expires_at)
      VALUES (${link}::uuid, 'report', 'mrr_trend', 'unused', ${u.id}, now(), now() + interval '1 day')`);
    ownLinks.set(u.email, link);
  }
  const failures: string[] = [];
  let checked = 0;
  for (const rule of ROUTES) {
    const url = await URLS[`${rule.method} ${rule.path}`]?.(users) ?? exampleUrl(rule, { id: String(target.id) });
    const pathname = new URL(url, TEST_ORIGIN).pathname;
    const effective = findRule(rule.method, pathname) ?? rule; // an earlier row may cover the example (e.g. /x/new vs /x/:id)
    for (const who of ['anonymous', ...ROLES] as const) {
      const user = who === 'anonymous' ? undefined : users.get(who)!;
      // A fresh session per request: some allowed requests (logout, sign out everywhere) end the session they use.
      const cookie = user ? await sessionCookie(t.db, user.id) : '';
      const body = BODIES[`${rule.method} ${rule.path}`]?.(user ? credentials.get(who as Role) : undefined, login);
      const res = await app.request(url, requestInit(rule, url, cookie, body));
      const location = res.headers.get('location') ?? '';
      // The authorize middleware's sign-in redirect (logout's plain 303 to /login is a success, not a denial).
      const toLogin = res.status >= 300 && res.status < 400 && location.startsWith('/login?next=');
      const label = `${rule.method} ${url} as ${who}: ${res.status}${location ? ` -> ${location}` : ''}`;
      checked++;
      if (allowed(effective.access, user)) {
        if (res.status < 200 || res.status >= 400 || toLogin) {
          const why = res.status >= 400 ? ` ${(await res.clone().text()).replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 160)}` : '';
          failures.push(`${label} (expected what the route answers an allowed request: 2xx/3xx)${why}`);
        }
      } else if (!user) {
        const page = rule.method === 'GET' && !isApi(pathname);
        if (page ? !(res.status === 303 && location.startsWith('/login?next=')) : res.status !== 401) {
          failures.push(`${label} (expected ${page ? '303 to /login' : '401'})`);
        }
      } else if (res.status !== 403) {
        failures.push(`${label} (expected 403)`);
      }
      await res.arrayBuffer();
    }
  }
  assert.is(checked, ROUTES.length * 5);
  assert.equal(failures, [], `\n${failures.join('\n')}`);
});

test('a path missing from the table is 404 for everyone, even for an admin (deny by default)', async () => {
  const app = createApp({ db: t.db, log: () => {} });
  const admin = await createUser(t.db, { role: 'admin' });
  const cookie = await sessionCookie(t.db, admin.id);
  for (const path of ['/admin/secret', '/api/not-a-route', '/account/anything']) {
    assert.is((await app.request(path, { headers: { Cookie: cookie } })).status, 404, path);
    assert.is((await app.request(path)).status, 404, `${path} anonymous`);
  }
});

test('every handler mounted on the app has a row in the table (otherwise deny-by-default makes it unreachable)', () => {
  const app = createApp({ db: t.db, log: () => {} });
  const missing = new Set<string>();
  let handlers = 0;
  for (const r of app.routes) {
    if (r.method === 'ALL' || r.method === 'OPTIONS') continue; // middleware (app.use) and CORS preflights
    handlers++;
    const path = r.path.replace(/:[^/{]+(\{[^}]*\})?/g, 'x').replace(/\*$/, 'x');
    if (!findRule(r.method, path)) missing.add(`${r.method} ${r.path}`);
  }
  assert.ok(handlers >= 20, `walked ${handlers} handlers`);
  assert.equal([...missing], [], `handlers without a row in server/auth/access.ts:\n${[...missing].join('\n')}`);
});

test.run();
