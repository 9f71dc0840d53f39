// Dashboards are declarative files, views/dashboards/<id>.json: title, description, roles, shared filters and tiles
// (report + size + fixed params). Adding a dashboard is adding a file. They are validated against the report catalog
// (unknown reports, fixed params a report does not declare, filters no tile uses) with `file: reason` messages.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Catalog, ReportDef } from '../reports/catalog.ts';
import { PERIODS, type Period } from '../../views/filters.ts';
import { STAFF, type Role } from '../auth/roles.ts';

export const DEFAULT_DASHBOARDS_DIR = fileURLToPath(new URL('../../views/dashboards/', import.meta.url));

export interface TileDecl {
  report: string;
  /** columns spanned, 1–4 */
  size: number;
  /** params fixed for this tile (not touched by the dashboard filters) */
  params: Record<string, string | string[]>;
  /** chart height in px */
  height?: number;
  /** KPI tiles: the good direction of change (default up) */
  better?: 'up' | 'down';
}

export interface FilterDecl {
  name: string;
  type: 'period' | 'multi' | 'enum';
  label: string;
  /** period: 3m | 6m | 12m | ytd; enum: a value */
  default?: string;
  /** choices; absent: taken from the first tile report that declares a parameter of this name */
  values?: string[];
}

export interface Dashboard {
  id: string;
  file: string;
  title: string;
  description: string;
  roles: Role[];
  columns: number;
  filters: FilterDecl[];
  tiles: TileDecl[];
}

export class DashboardError extends Error {
  constructor(public problems: string[]) { super(`invalid dashboard files:\n  ${problems.join('\n  ')}`); }
}

const ID = /^[a-z0-9][a-z0-9_-]*$/;
const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function parseDashboard(id: string, file: string, text: string, problems: string[]): Dashboard | undefined {
  const bad = (m: string) => { problems.push(`${file}: ${m}`); };
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (e: any) { bad(`invalid JSON: ${e.message}`); return; }
  if (!isObj(raw)) { bad('a dashboard is a JSON object'); return; }
  const known = ['title', 'description', 'roles', 'columns', 'filters', 'tiles', '$comment'];
  for (const k of Object.keys(raw)) if (!known.includes(k)) bad(`unknown key "${k}" (allowed: ${known.join(', ')})`);
  const title = typeof raw.title === 'string' && raw.title.trim() ? raw.title : (bad('"title" must be a non-empty string'), id);
  const description = raw.description === undefined ? '' : typeof raw.description === 'string' ? raw.description : (bad('"description" must be a string'), '');
  let roles: Role[] = [...STAFF];
  if (raw.roles !== undefined) {
    if (!Array.isArray(raw.roles) || !raw.roles.length || raw.roles.some((r) => !STAFF.includes(r as Role))) bad(`"roles" must be a non-empty list of ${STAFF.join(', ')}`);
    else roles = raw.roles as Role[];
  }
  const columns = raw.columns === undefined ? 4 : Number(raw.columns);
  if (!Number.isInteger(columns) || columns < 1 || columns > 4) bad('"columns" must be 1, 2, 3 or 4');

  const filters: FilterDecl[] = [];
  if (raw.filters !== undefined && !Array.isArray(raw.filters)) bad('"filters" must be a list');
  for (const [i, f] of (Array.isArray(raw.filters) ? raw.filters : []).entries()) {
    const where = `filters[${i}]`;
    if (!isObj(f)) { bad(`${where} must be an object`); continue; }
    const type = f.type;
    if (type === 'period') {
      const def = (f.default ?? '12m') as string;
      if (!(def in PERIODS)) bad(`${where}: period default must be one of ${Object.keys(PERIODS).join(', ')}`);
      if (filters.some((x) => x.type === 'period')) bad(`${where}: only one period filter`);
      filters.push({ name: 'period', type: 'period', label: typeof f.label === 'string' ? f.label : 'Period', default: def });
    } else if (type === 'multi' || type === 'enum') {
      const name = f.name;
      if (typeof name !== 'string' || !/^[a-z][a-z0-9_]*$/.test(name) || ['period', 'from', 'to'].includes(name)) { bad(`${where}: "name" must be a snake_case parameter name other than period/from/to`); continue; }
      if (filters.some((x) => x.name === name)) bad(`${where}: filter "${name}" declared twice`);
      if (f.values !== undefined && (!Array.isArray(f.values) || f.values.some((v) => typeof v !== 'string'))) bad(`${where}: "values" must be a list of strings`);
      if (type === 'enum' && f.default !== undefined && typeof f.default !== 'string') bad(`${where}: "default" must be a string`);
      filters.push({ name, type, label: typeof f.label === 'string' ? f.label : name.replace(/_/g, ' '), default: f.default as string | undefined, values: f.values as string[] | undefined });
    } else bad(`${where}: "type" must be period, multi or enum`);
  }

  const tiles: TileDecl[] = [];
  if (!Array.isArray(raw.tiles) || !raw.tiles.length) bad('"tiles" must be a non-empty list');
  for (const [i, t] of (Array.isArray(raw.tiles) ? raw.tiles : []).entries()) {
    const where = `tiles[${i}]`;
    if (!isObj(t)) { bad(`${where} must be an object`); continue; }
    for (const k of Object.keys(t)) if (!['report', 'size', 'params', 'height', 'better'].includes(k)) bad(`${where}: unknown key "${k}"`);
    if (typeof t.report !== 'string' || !/^[a-z0-9_]+$/.test(t.report)) { bad(`${where}: "report" must be a report id`); continue; }
    const size = t.size === undefined ? 1 : Number(t.size);
    if (!Number.isInteger(size) || size < 1 || size > 4) bad(`${where}: "size" must be 1, 2, 3 or 4`);
    const params: Record<string, string | string[]> = {};
    if (t.params !== undefined) {
      if (!isObj(t.params)) bad(`${where}: "params" must be an object`);
      else for (const [k, v] of Object.entries(t.params)) {
        if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) params[k] = v as string | string[];
        else if (typeof v === 'number' || typeof v === 'boolean') params[k] = String(v);
        else bad(`${where}: params.${k} must be a string, number, boolean or list of strings`);
      }
    }
    const height = t.height === undefined ? undefined : Number(t.height);
    if (height !== undefined && (!Number.isInteger(height) || height < 60 || height > 1200)) bad(`${where}: "height" must be 60–1200 px`);
    if (t.better !== undefined && t.better !== 'up' && t.better !== 'down') bad(`${where}: "better" must be "up" or "down"`);
    tiles.push({ report: t.report, size: Math.min(Math.max(size, 1), 4), params, height, better: t.better as TileDecl['better'] });
  }
  return { id, file, title, description, roles, columns: Number.isInteger(columns) ? Math.min(Math.max(columns, 1), 4) : 4, filters, tiles };
}

/** Checks tiles and filters against the reports: each problem as `file: reason`. */
export function checkAgainstReports(d: Dashboard, reports: Map<string, ReportDef>): string[] {
  const problems: string[] = [];
  for (const [i, t] of d.tiles.entries()) {
    const r = reports.get(t.report);
    if (!r) { problems.push(`${d.file}: tiles[${i}]: unknown report "${t.report}"`); continue; }
    const declared = new Set(r.params.map((p) => p.name));
    for (const k of Object.keys(t.params)) if (!declared.has(k)) problems.push(`${d.file}: tiles[${i}]: report ${t.report} has no parameter "${k}"`);
    if (!d.roles.every((role) => (r.roles as string[]).includes(role))) {
      problems.push(`${d.file}: tiles[${i}]: report ${t.report} is not allowed for every role of the dashboard (${d.roles.join(', ')})`);
    }
  }
  for (const f of d.filters) {
    const names = f.type === 'period' ? ['from', 'to', 'month'] : [f.name];
    const used = d.tiles.some((t) => reports.get(t.report)?.params.some((p) => names.includes(p.name)));
    if (!used) problems.push(`${d.file}: filter "${f.name}" affects no tile (no tile's report declares ${names.join('/')})`);
  }
  return problems;
}

/** Parses every views/dashboards/*.json; throws DashboardError listing every problem. */
export function loadDashboards(dir = DEFAULT_DASHBOARDS_DIR, catalog?: Catalog): Map<string, Dashboard> {
  const problems: string[] = [];
  const out = new Map<string, Dashboard>();
  const rel = (f: string) => path.relative(process.cwd(), f) || f;
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  for (const f of files) {
    const id = f.slice(0, -5);
    const file = rel(path.join(dir, f));
    if (!ID.test(id)) { problems.push(`${file}: file name must be <id>.json with a lowercase id`); continue; }
    const d = parseDashboard(id, file, fs.readFileSync(path.join(dir, f), 'utf8'), problems);
    if (d) {
      if (catalog) problems.push(...checkAgainstReports(d, catalog.reports));
      out.set(id, d);
    }
  }
  if (problems.length) throw new DashboardError(problems);
  return out;
}

export type { Period };
