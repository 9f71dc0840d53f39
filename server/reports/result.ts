// What running a report answers, and the result cache's shape: types only, below the engine, so the app's Deps
// (server/types.ts) can name the cache without importing the engine.
import type { VlSpec } from './chart.ts';

export interface ReportResult {
  id: string;
  title: string;
  /** every parameter with its effective value (defaults resolved) */
  params: Record<string, string | string[] | null>;
  /** canonical query string (defaults omitted, keys sorted, multi-values repeated) */
  query: string;
  /** ISO time the data is as of: the start of the oldest last-good refresh of its marts; the last catalog write
   *  (titles load) for @catalog reports; when its SQL ran for live SQL (at most its @maxage ago); read on a replica that is behind, no later than the last
   *  commit it replayed */
  asOf: string;
  /** ISO time of the next scheduled refresh of its marts; null for live SQL */
  nextRefresh: string | null;
  /** a refresh of one of its marts failed: the data shown is the last good one */
  stale: boolean;
  rowCount: number;
  /** more rows existed than this answer holds (past the row cap, or on the next page); rows holds the first rowCap */
  truncated: boolean;
  /** the most rows this answer holds: the report's @rowcap, or its @pagesize when paged */
  rowCap: number;
  /** which page this answer is (reports with @pagesize), else null */
  page: number | null;
  rows: Record<string, any>[];
  spec: VlSpec;
  /** strong validator of this answer: (report, resolved params, generations of its marts or of the catalog) */
  etag: string;
  cached: boolean;
}

export interface CacheEntry { gen: string; result: Omit<ReportResult, 'cached' | 'nextRefresh'> }
/** Results by report, definition and parameters. A mart-backed or @catalog result (gen: the generations it was read
 *  under) serves while the generations of its marts (or of the catalog) are unchanged; a live-SQL result (gen '',
 *  only reports with `@maxage`) until its asOf is that old. One per app (createApp makes it; config.reportCache = false: none). */
export type ResultCache = Map<string, CacheEntry>;
