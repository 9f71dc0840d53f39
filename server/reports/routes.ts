// The report engine's routes, all registered here (one line each; the handlers are api.ts, csv.ts and pages.ts).
// A new report route is added here and to the route-by-role table (server/auth/access.ts); see "Adding a route" in
// server/README.md.
import { Hono } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import { listReports, martStatus, refreshMartsNow, reportData } from './api.ts';
import { csvDownload } from './csv.ts';
import { catalogPage, refreshFromPage, reportPage } from './pages.ts';

/** `<id>`, `<id>.csv` or `<id>.json` */
const ID = /^([a-z0-9_]+)(?:\.(csv|json))?$/;

export const reportRoutes = new Hono<Env>();

// JSON API and CSV
reportRoutes.get('/api/reports', listReports);
reportRoutes.get('/api/marts', martStatus);
reportRoutes.post('/api/marts/refresh', refreshMartsNow);
reportRoutes.get('/api/reports/:id', async (c): Promise<Response> => {
  const m = ID.exec(c.req.param('id'));
  if (!m) throw new HttpError(404, `No report named ${c.req.param('id')}`);
  return m[2] === 'csv' ? csvDownload(c, m[1]) : reportData(c, m[1], m[2] as 'json' | undefined);
});

// pages
reportRoutes.get('/reports', catalogPage);
reportRoutes.post('/reports/refresh', refreshFromPage);
reportRoutes.get('/reports/:id', reportPage);
