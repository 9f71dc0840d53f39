// Every page the product has, for the validators (test/web-validators.test.ts: html-validate over the server's HTML;
// test/e2e/accessibility.test.ts: axe-core in Chromium, both themes). `as` is who looks at it: null = signed out.
// The admin sees every staff page (and every report: none is closed to admins); a subscriber has its own account page.
import type { Role } from '../../server/auth/access.ts';
import type { Catalog } from '../../server/reports/catalog.ts';
import { loadDashboards } from '../../server/dashboards/catalog.ts';

export interface SitePage {
  /** GET path; `reset` pages are the answer of POSTing the admin's reset-password form for `userId` */
  path: string;
  as: Role | null;
  /** an answer other than 200 the page is meant to have (the error page) */
  status?: number;
  /** the page is the answer to this form post (same-origin, signed in as `as`) */
  post?: Record<string, string>;
}

export function sitePages(catalog: Catalog, ids: { userId: number }): SitePage[] {
  const reports = [...catalog.reports.keys()].sort();
  return [
    { path: '/', as: null },
    { path: '/login', as: null },
    { path: '/signup', as: null },
    { path: '/no-such-page', as: null, status: 404 },
    { path: '/account', as: 'subscriber' },
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
    ...reports.map((id) => ({ path: `/reports/${id}`, as: 'admin' as const })),
  ];
}
