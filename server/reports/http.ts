// What the report routes share (api.ts, csv.ts, pages.ts): the catalog and role of the request, its raw query,
// conditional requests (If-None-Match) and the freshness headers every report answer carries.
import type { Context } from 'hono';
import type { Env } from '../types.ts';
import { HttpError } from '../errors.ts';
import type { Catalog, ReportDef } from './catalog.ts';
import type { Role } from '../auth/roles.ts';

/** The catalog of this app (deps.catalog). */
export function catalogOf(c: Context<Env>): Catalog {
  return c.get('deps').catalog;
}

export function roleOf(c: Context<Env>): Role {
  const user = c.get('user');
  if (!user) throw new HttpError(401, 'Sign in required');
  return user.role;
}

export function rawQuery(c: Context<Env>): URLSearchParams {
  return new URL(c.req.url).searchParams;
}

export function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(etag);
}

/** The headers of every report answer (API, JSON rows, CSV): as-of, stale, row cap, truncated, no shared caching. */
export function freshnessHeaders(c: Context<Env>, r: { asOf: string; stale: boolean; rowCap: number; truncated: boolean }) {
  c.header('X-As-Of', r.asOf);
  c.header('X-Stale', String(r.stale));
  c.header('X-Row-Cap', String(r.rowCap));
  c.header('X-Truncated', String(r.truncated));
  c.header('Cache-Control', 'private, no-cache');
  c.header('Vary', 'Cookie');
}

/** The canonical query string of another page of a paged report (page 1 is the default: omitted). */
export function pageQuery(query: string, page: number): string {
  const q = new URLSearchParams(query);
  q.delete('page');
  if (page > 1) q.append('page', String(page));
  q.sort();
  return q.toString();
}

/** The pages next to a paged answer: previous when past the first, next when more rows follow within the cap. */
export function pagesAround(report: ReportDef, r: { page: number | null; truncated: boolean; query: string }): { prev?: string; next?: string } {
  if (r.page === null || !report.pageSize) return {};
  const lastPage = Math.ceil(report.rowCap / report.pageSize);
  return {
    ...(r.page > 1 ? { prev: pageQuery(r.query, r.page - 1) } : {}),
    ...(r.truncated && r.page < lastPage ? { next: pageQuery(r.query, r.page + 1) } : {}),
  };
}
