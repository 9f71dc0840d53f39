// Every page the product has, for the validators (test/web-validators.test.ts: html-validate over the server's HTML;
// test/e2e/accessibility.test.ts: axe-core in Chromium, both themes). `as` is who looks at it: null = signed out.
// The admin sees every staff page (and every report: none is closed to admins); a subscriber has its own account page.
import type { Role } from '../../server/auth/access.ts';
import type { Catalog } from '../../server/reports/catalog.ts';
import { loadDashboards } from '../../server/dashboards/catalog.ts';
import sql from 'sql-template-tag';
import type { Db } from '../../server/db/index.ts';

export interface SitePage {
  /** GET path; `reset` pages are the answer of POSTing the admin's reset-password form for `userId` */
  path: string;
  as: Role | null;
  /** an answer other than 200 the page is meant to have (the error page) */
  status?: number;
  /** the page is the answer to this form post (same-origin, signed in as `as`) */
  post?: Record<string, string>;
}

/** `ids.title`: a title of the catalog (its page, its player, a search for its name). The admin is expected to hold an
 *  active subscription (the player page) and the subscriber none (the checkout form of /plans, the refused player). */
export function sitePages(catalog: Catalog, ids: { userId: number; title: { id: number; name: string } }): SitePage[] {
  const reports = [...catalog.reports.keys()].sort();
  return [
    { path: '/', as: null },
    { path: '/login', as: null },
    { path: '/signup', as: null },
    { path: '/no-such-page', as: null, status: 404 },
    { path: '/account', as: 'subscriber' },
    { path: '/browse', as: null },
    { path: '/browse', as: 'subscriber' },
    { path: `/browse?${new URLSearchParams({ q: ids.title.name }).toString()}`, as: null },
    { path: '/browse?type=movie', as: 'subscriber' },
    { path: `/titles/${ids.title.id}`, as: null },
    { path: `/titles/${ids.title.id}`, as: 'subscriber' },
    { path: `/titles/${ids.title.id}/play`, as: 'admin' },
    { path: `/titles/${ids.title.id}/play`, as: 'subscriber', status: 403 },
    { path: '/plans', as: null },
    { path: '/plans', as: 'subscriber' },
    { path: '/account', as: 'admin' },
    { path: '/account/password', as: 'admin' },
    { path: '/admin/users', as: 'admin' },
    { path: '/admin/users/new', as: 'admin' },
    { path: `/admin/users/${ids.userId}`, as: 'admin' },
    { path: `/admin/users/${ids.userId}/reset-password`, as: 'admin', post: {} },
    { path: '/admin/audit', as: 'admin' },
    { path: '/embeds', as: 'admin' },
    { path: '/dashboards', as: 'admin' },
    ...[...loadDashboards().keys()].sort().map((id) => ({ path: `/dashboards/${id}`, as: 'admin' as const })),
    { path: '/reports', as: 'admin' },
    { path: '/digests?path=%2Freports%2Fmrr_trend', as: 'admin' },
    ...reports.map((id) => ({ path: `/reports/${id}`, as: 'admin' as const })),
  ];
}

/** What sitePages needs from the database: a title with a plain name (the search page's URL is then canonical), and
 *  an active subscription for the admin, who plays it (playing needs one, whatever the role). */
export async function sitePagesData(db: Db, adminId: number): Promise<{ id: number; name: string }> {
  await db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES (${adminId}, (SELECT id FROM plans WHERE code = 'standard'), 'active', now(), now() + interval '1 month')`);
  const t = await db.one<{ id: number; name: string }>(`SELECT id, title AS name FROM titles WHERE title ~ '^[A-Za-z0-9]+( [A-Za-z0-9]+)*$' ORDER BY id LIMIT 1`);
  if (!t) throw new Error('no title with a plain name in the catalog');
  return t;
}
