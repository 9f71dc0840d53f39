// The catalog: every report (sql/reports/<id>.sql, optional <id>.vl.json) and mart (sql/reports/marts/<name>.sql),
// parsed and validated as a whole. Any problem is reported as `file:line reason`, all of them at once.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cron from 'node-cron';
import { parseParamDecl, ParamDeclError, sqlTypeOf, parseKeyValues, type ParamDecl } from './params.ts';
import { scanSql, bindParams, CATALOG_TABLES } from './sql-text.ts';
import { chartFromLine, chartFromSidecar, compileChart, ChartError, type VlSpec } from './chart.ts';

export const DEFAULT_REPORTS_DIR = fileURLToPath(new URL('../../sql/reports/', import.meta.url));
export const REPORT_ROLES = ['admin', 'analyst', 'manager'] as const;
export type ReportRole = (typeof REPORT_ROLES)[number];

export interface ReportDef {
  id: string;
  file: string;
  title: string;
  description: string;
  definition: string;
  roles: ReportRole[];
  /** marts the SQL reads (declared with @marts or found in the SQL) */
  marts: string[];
  /** those marts and every mart they read, transitively */
  allMarts: string[];
  /** `-- @catalog`: reads only the titles catalog (CATALOG_TABLES; checked at start), so results are cached under the
   *  catalog's generation, moved by every write to those tables (sql/schema/0020_catalog_generation.sql) */
  catalog: boolean;
  params: ParamDecl[];
  /** the SQL with :name replaced by ($n::type) (same lines as the file) */
  sql: string;
  sqlLine: number;
  /** param names in $n order */
  bindOrder: string[];
  spec: VlSpec;
  chart: 'line' | 'sidecar';
  timeoutMs: number;
  rowCap: number;
  /** `-- @pagesize <rows>`: answers are pages of this many rows, chosen by the `page` parameter the engine adds
   *  (1 to the last page within @rowcap); 0: one answer of up to @rowcap rows. CSV is never paged. */
  pageSize: number;
  /** `-- @maxage <seconds>` (live-SQL reports only): a result may be served from the result cache until it is that
   *  old, and one is read again ahead of time (when half that age) so callers do not wait; 0: never cached */
  maxAgeMs: number;
  /** hash of the report file (and sidecar): part of ETags, so an edited report never answers 304 with old content */
  hash: string;
}

export interface MartDef {
  name: string;
  file: string;
  unique: string[];
  indexes: string[][];
  schedule: string;
  depends: string[];
  /** @incremental: the column holding each row's UTC month or day; null: every refresh recomputes the whole mart */
  incremental: string | null;
  /** @incremental's lookback (default 1 day): the window starts at the month holding (last refresh - lookback) */
  lookback: string;
  /** the query over the whole history (:since replaced by -infinity): table DDL and live inlining */
  sql: string;
  /** the query as the refresh runs it: :since bound as $1 (timestamptz) when the file uses it */
  refreshSql: string;
  usesSince: boolean;
  /** line of the file where the SQL starts (maps database error positions to file:line) */
  sqlLine: number;
  timeoutMs: number;
  /** @planner: planner switches SET LOCAL in the refresh's transaction (they change the plan, not the rows) */
  planner: [string, 'on' | 'off'][];
  /** the SQL reads a catalog table (CATALOG_TABLES): an @incremental mart is rebuilt in full after a titles load, whose
   *  changes reach rows of closed months the trailing window would keep */
  readsCatalog: boolean;
  /** hash of everything that shapes the mart table and its contents: a change recreates it */
  hash: string;
}

export interface Catalog {
  dir: string;
  reports: Map<string, ReportDef>;
  marts: Map<string, MartDef>;
  /** mart names, every mart after the marts it reads */
  martOrder: string[];
}

export class CatalogError extends Error {
  constructor(public problems: string[]) {
    super(`invalid report files:\n  ${problems.join('\n  ')}`);
  }
}

interface HeaderLine { key: string; value: string; line: number }

/** Leading comment lines: `-- @key value`; other comments in the header are free text. Returns header and body. */
function splitHeader(text: string): { header: HeaderLine[]; body: string; bodyLine: number } {
  const lines = text.split('\n');
  const header: HeaderLine[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const l = lines[i].trim();
    if (l === '') continue;
    if (!l.startsWith('--')) break;
    const m = /^--\s*@([a-z_]+)\b\s*(.*)$/.exec(l);
    if (m) header.push({ key: m[1], value: m[2].trim(), line: i + 1 });
  }
  return { header, body: lines.slice(i).join('\n'), bodyLine: i + 1 };
}

const REPORT_KEYS = ['title', 'description', 'definition', 'roles', 'marts', 'catalog', 'param', 'chart', 'timeout', 'rowcap', 'pagesize', 'maxage'];
export { CATALOG_TABLES }; // the titles catalog's tables (server/reports/sql-text.ts)
const MART_KEYS = ['mart', 'unique', 'index', 'refresh', 'depends', 'incremental', 'timeout', 'planner'];
/** how marts are stored (part of every mart's hash: a change of storage recreates them all) */
const MART_STORAGE = 'table-window-v1';
const IDENT = /^[a-z_][a-z0-9_]*$/;

function checkStatement(body: string, bodyLine: number, rel: string, problems: string[], tokens: ReturnType<typeof scanSql>) {
  const trimmed = body.replace(/^(\s|--[^\n]*\n)*/, '');
  if (!/^(select|with|values|table)\b/i.test(trimmed)) {
    problems.push(`${rel}:${bodyLine} the query must be one SELECT (or WITH … SELECT) statement`);
  }
  const semis = tokens.filter((t) => t.kind === 'semicolon');
  for (const s of semis) {
    if (body.slice(s.end).replace(/--[^\n]*/g, '').trim() !== '') problems.push(`${rel}:${s.line} one statement per file: text after ";"`);
  }
}

const stripSemicolon = (body: string) => body.replace(/;\s*(--[^\n]*\s*)*$/, '').trimEnd();

function parseMart(file: string, rel: string, problems: string[]): MartDef | undefined {
  const text = fs.readFileSync(file, 'utf8');
  const name = path.basename(file, '.sql');
  const { header, body, bodyLine } = splitHeader(text);
  const before = problems.length;
  if (!/^mart_[a-z0-9_]+$/.test(name) || name.length > 55) problems.push(`${rel}:1 mart file names are mart_<snake_case>.sql (at most 55 characters)`);
  const get = (k: string) => header.filter((h) => h.key === k);
  for (const h of header) if (!MART_KEYS.includes(h.key)) problems.push(`${rel}:${h.line} unknown header @${h.key} (mart keys: ${MART_KEYS.map((k) => '@' + k).join(' ')})`);
  for (const k of ['mart', 'unique', 'refresh', 'incremental', 'timeout']) if (get(k).length > 1) problems.push(`${rel}:${get(k)[1].line} @${k} given twice`);
  const decl = get('mart')[0];
  if (!decl) problems.push(`${rel}:1 missing "-- @mart ${name}"`);
  else if (decl.value !== name) problems.push(`${rel}:${decl.line} @mart ${decl.value} does not match the file name ${name}`);
  const cols = (v: string) => v.split(/[\s,]+/).filter(Boolean);
  const uniq = get('unique')[0];
  let unique: string[] = [];
  if (!uniq) problems.push(`${rel}:1 missing "-- @unique col, col" (the mart's key: one row per value)`);
  else {
    unique = cols(uniq.value);
    if (!unique.length || unique.some((c) => !IDENT.test(c))) problems.push(`${rel}:${uniq.line} @unique lists snake_case column names`);
  }
  const indexes: string[][] = [];
  for (const h of get('index')) {
    const c = cols(h.value);
    if (!c.length || c.some((x) => !IDENT.test(x))) problems.push(`${rel}:${h.line} @index lists snake_case column names`);
    indexes.push(c);
  }
  const refresh = get('refresh')[0];
  if (!refresh) problems.push(`${rel}:1 missing "-- @refresh <cron>" (e.g. */15 * * * *)`);
  else if (!cron.validate(refresh.value)) problems.push(`${rel}:${refresh.line} @refresh "${refresh.value}" is not a valid cron expression`);
  let timeoutMs = 600_000;
  const t = get('timeout')[0];
  if (t) {
    if (!/^\d{1,7}$/.test(t.value) || Number(t.value) < 100) problems.push(`${rel}:${t.line} @timeout is milliseconds (100 or more)`);
    else timeoutMs = Number(t.value);
  }
  const inc = get('incremental')[0];
  let incremental: string | null = null;
  let lookback = '1 day';
  if (inc) {
    const [col, n, unit, ...rest] = inc.value.split(/\s+/);
    if (!IDENT.test(col ?? '')) problems.push(`${rel}:${inc.line} @incremental names the column holding each row's UTC month or day`);
    else if (!unique.includes(col)) problems.push(`${rel}:${inc.line} @incremental ${col} must be one of the @unique columns`);
    else incremental = col;
    if (n !== undefined) {
      if (rest.length || !/^\d{1,3}$/.test(n) || !/^(days?|months?)$/.test(unit ?? '')) {
        problems.push(`${rel}:${inc.line} @incremental <column> [<n> days|months]: the lookback is a whole number of days or months`);
      } else lookback = `${Number(n)} ${unit}`;
    }
  }
  // planner switches for the refresh's transaction (SET LOCAL), e.g. enable_sort=off where PostgreSQL, unable to
  // estimate how few groups an aggregate has, would sort millions of rows instead of hashing them
  const planner: [string, 'on' | 'off'][] = [];
  for (const h of get('planner')) {
    for (const kv of h.value.split(/\s+/).filter(Boolean)) {
      const m = /^(enable_[a-z_]+)=(on|off)$/.exec(kv);
      if (!m) problems.push(`${rel}:${h.line} @planner takes enable_<plan node>=on|off settings (got ${JSON.stringify(kv)})`);
      else planner.push([m[1], m[2] as 'on' | 'off']);
    }
  }
  const depends = get('depends').flatMap((h) => cols(h.value));
  const tokens = scanSql(body, bodyLine);
  checkStatement(body, bodyLine, rel, problems, tokens);
  for (const p of tokens.filter((x) => x.kind === 'param')) {
    if (p.name !== 'since') problems.push(`${rel}:${p.line} marts take one parameter, :since (got :${p.name})`);
    else if (!inc) problems.push(`${rel}:${p.line} :since is the lower bound of an incremental refresh: declare "-- @incremental <month or day column>"`);
  }
  for (const m of tokens.filter((x) => x.kind === 'mart')) if (m.name !== name && !depends.includes(m.name)) depends.push(m.name);
  if (tokens.some((x) => x.kind === 'mart' && x.name === name)) problems.push(`${rel}:${bodyLine} a mart cannot read itself`);
  if (problems.length > before) return undefined;
  const query = stripSemicolon(body);
  const toks = scanSql(query, bodyLine);
  const usesSince = toks.some((x) => x.kind === 'param');
  let sql = '';
  let pos = 0;
  for (const p of toks.filter((x) => x.kind === 'param')) { sql += query.slice(pos, p.start) + "('-infinity'::timestamptz)"; pos = p.end; }
  sql += query.slice(pos);
  const refreshSql = bindParams(query, toks, () => 'timestamptz').text;
  const hash = createHash('sha256').update(JSON.stringify({ MART_STORAGE, sql: query, unique, indexes, incremental })).digest('hex');
  const readsCatalog = tokens.some((x) => x.kind === 'catalog');
  return { name, file: rel, unique, indexes, schedule: refresh!.value, depends, incremental, lookback, sql, refreshSql, usesSince, sqlLine: bodyLine, timeoutMs, planner, readsCatalog, hash };
}

function parseReport(file: string, rel: string, marts: Map<string, MartDef>, problems: string[]): ReportDef | undefined {
  const text = fs.readFileSync(file, 'utf8');
  const id = path.basename(file, '.sql');
  const before = problems.length;
  if (!/^[a-z0-9_]+$/.test(id)) problems.push(`${rel}:1 report file names are <id>.sql with id in [a-z0-9_]`);
  const { header, body, bodyLine } = splitHeader(text);
  const get = (k: string) => header.filter((h) => h.key === k);
  for (const h of header) if (!REPORT_KEYS.includes(h.key)) problems.push(`${rel}:${h.line} unknown header @${h.key} (report keys: ${REPORT_KEYS.map((k) => '@' + k).join(' ')})`);
  for (const k of ['title', 'roles', 'chart', 'timeout', 'rowcap', 'pagesize', 'maxage']) if (get(k).length > 1) problems.push(`${rel}:${get(k)[1].line} @${k} given twice`);
  const title = get('title')[0]?.value ?? '';
  if (!title) problems.push(`${rel}:1 missing "-- @title <title>"`);
  const description = get('description').map((h) => h.value).join(' ');
  const definition = get('definition').map((h) => h.value).join(' ');

  let roles: ReportRole[] = [...REPORT_ROLES];
  const r = get('roles')[0];
  if (r) {
    roles = r.value.split(/[\s,]+/).filter(Boolean) as ReportRole[];
    const bad = roles.filter((x) => !REPORT_ROLES.includes(x));
    if (bad.length || !roles.length) problems.push(`${rel}:${r.line} @roles takes ${REPORT_ROLES.join(' ')} (got ${bad.join(' ') || 'nothing'})`);
  }

  const params: ParamDecl[] = [];
  for (const h of get('param')) {
    try {
      const d = parseParamDecl(h.value, h.line);
      if (params.some((p) => p.name === d.name)) problems.push(`${rel}:${h.line} parameter ${d.name} declared twice`);
      params.push(d);
    } catch (e) {
      if (!(e instanceof ParamDeclError)) throw e;
      problems.push(`${rel}:${h.line} ${e.message}`);
    }
  }

  const declared: string[] = [];
  for (const h of get('marts')) {
    for (const m of h.value.split(/[\s,]+/).filter(Boolean)) {
      if (!marts.has(m)) problems.push(`${rel}:${h.line} unknown mart ${m} (no sql/reports/marts/${m}.sql)`);
      else if (!declared.includes(m)) declared.push(m);
    }
  }
  const catalogLine = get('catalog')[0];
  if (catalogLine?.value) problems.push(`${rel}:${catalogLine.line} @catalog takes no value (got ${catalogLine.value})`);
  const tokens = scanSql(body, bodyLine);
  checkStatement(body, bodyLine, rel, problems, tokens);
  for (const t of tokens) {
    if (t.kind === 'mart' && !marts.has(t.name)) problems.push(`${rel}:${t.line} reads unknown mart ${t.name}`);
    else if (t.kind === 'mart' && !declared.includes(t.name)) declared.push(t.name);
    if (t.kind === 'param' && !params.some((p) => p.name === t.name)) problems.push(`${rel}:${t.line} parameter :${t.name} is used but not declared with -- @param`);
  }
  if (catalogLine && declared.length) problems.push(`${rel}:${catalogLine.line} @catalog reports read only catalog tables, not marts (${declared.join(', ')})`);
  for (const p of params) {
    if (!tokens.some((t) => t.kind === 'param' && t.name === p.name)) problems.push(`${rel}:${p.line} parameter ${p.name} is declared but the SQL never uses :${p.name}`);
  }

  const int = (k: string, def: number, min: number, max: number) => {
    const h = get(k)[0];
    if (!h) return def;
    if (!/^\d{1,9}$/.test(h.value) || Number(h.value) < min || Number(h.value) > max) {
      problems.push(`${rel}:${h.line} @${k} must be a whole number from ${min} to ${max}`);
      return def;
    }
    return Number(h.value);
  };
  const timeoutMs = int('timeout', 5000, 10, 600_000);
  const rowCap = int('rowcap', 10_000, 1, 1_000_000);
  const maxAgeMs = int('maxage', 0, 1, 3600) * 1000;
  const pageSize = int('pagesize', 0, 1, rowCap);
  const pageLine = get('pagesize')[0];
  // the pages of a paged report: a `page` parameter the file does not declare (its SQL never sees it)
  if (pageLine && params.some((p) => p.name === 'page')) problems.push(`${rel}:${pageLine.line} @pagesize adds the parameter page: the report must not declare its own`);
  else if (pageLine && pageSize) {
    params.push({ name: 'page', type: 'int', label: 'Page', default: '1', min: '1', max: String(Math.ceil(rowCap / pageSize)), line: pageLine.line });
  }
  const maxAgeLine = get('maxage')[0];
  if (maxAgeLine && (catalogLine || declared.length)) {
    problems.push(`${rel}:${maxAgeLine.line} @maxage is for live-SQL reports: mart-backed and @catalog reports are cached until their data changes`);
  }

  let spec: VlSpec | undefined;
  let chart: 'line' | 'sidecar' = 'line';
  const sidecarFile = file.replace(/\.sql$/, '.vl.json');
  const sidecarRel = rel.replace(/\.sql$/, '.vl.json');
  const chartLine = get('chart')[0];
  const hasSidecar = fs.existsSync(sidecarFile);
  let sidecarText = '';
  if (chartLine && hasSidecar) problems.push(`${rel}:${chartLine.line} has both @chart and ${path.basename(sidecarFile)}: keep one`);
  else if (chartLine) {
    try { spec = chartFromLine(chartLine.value); compileChart(spec); } catch (e) {
      if (!(e instanceof ChartError)) throw e;
      problems.push(`${rel}:${chartLine.line} chart ${e.message}`);
    }
  } else if (hasSidecar) {
    chart = 'sidecar';
    sidecarText = fs.readFileSync(sidecarFile, 'utf8');
    try { spec = chartFromSidecar(sidecarText); compileChart(spec); } catch (e: any) {
      if (!(e instanceof ChartError)) throw e;
      problems.push(`${sidecarRel}:${(e as ChartError & { line?: number }).line ?? 1} chart ${e.message}`);
    }
  } else problems.push(`${rel}:1 no chart: add "-- @chart <mark> x=<col>:<T|Q|N|O> y=<col>:<type>" or ${path.basename(sidecarFile)}`);

  if (problems.length > before) return undefined;
  const byName = new Map(params.map((p) => [p.name, p]));
  const bodySql = stripSemicolon(body);
  const bound = bindParams(bodySql, scanSql(bodySql, bodyLine), (n) => sqlTypeOf(byName.get(n)!));
  const hash = createHash('sha256').update(text).update('\0').update(sidecarText).digest('hex');
  return {
    id, file: rel, title, description, definition, roles, marts: declared, allMarts: [], catalog: !!catalogLine, params,
    sql: bound.text, sqlLine: bodyLine, bindOrder: bound.order, spec: spec!, chart, timeoutMs, rowCap, pageSize, maxAgeMs, hash,
  };
}

/** Parses and validates every report and mart under dir; throws CatalogError listing `file:line reason` for each problem. */
export function loadCatalog(dir = DEFAULT_REPORTS_DIR): Catalog {
  const problems: string[] = [];
  const rel = (f: string) => path.relative(process.cwd(), f) || f;
  if (!fs.existsSync(dir)) throw new CatalogError([`${rel(dir)}: no such directory`]);
  const martDir = path.join(dir, 'marts');
  const marts = new Map<string, MartDef>();
  const martFiles = fs.existsSync(martDir) ? fs.readdirSync(martDir).filter((f) => f.endsWith('.sql')).sort() : [];
  for (const f of martFiles) {
    const m = parseMart(path.join(martDir, f), rel(path.join(martDir, f)), problems);
    if (m) marts.set(m.name, m);
  }
  for (const f of fs.existsSync(martDir) ? fs.readdirSync(martDir).filter((x) => !x.endsWith('.sql') && !x.startsWith('.')) : []) {
    problems.push(`${rel(path.join(martDir, f))}:1 only mart_<name>.sql files belong in marts/`);
  }
  // unknown dependencies and cycles
  for (const m of marts.values()) {
    for (const d of m.depends) if (!marts.has(d)) problems.push(`${m.file}:1 reads unknown mart ${d}`);
  }
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]) => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') { problems.push(`${marts.get(name)!.file}:1 mart dependency cycle: ${[...trail, name].join(' -> ')}`); return; }
    state.set(name, 'visiting');
    for (const d of marts.get(name)!.depends) if (marts.has(d)) visit(d, [...trail, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const name of [...marts.keys()].sort()) visit(name, []);

  const reports = new Map<string, ReportDef>();
  const files = fs.readdirSync(dir).sort();
  for (const f of files) {
    const full = path.join(dir, f);
    if (fs.statSync(full).isDirectory()) continue;
    if (f.endsWith('.sql')) {
      const r = parseReport(full, rel(full), marts, problems);
      if (r) reports.set(r.id, r);
    } else if (f.endsWith('.vl.json')) {
      if (!files.includes(f.replace(/\.vl\.json$/, '.sql'))) problems.push(`${rel(full)}:1 chart sidecar without a report ${f.replace(/\.vl\.json$/, '.sql')}`);
    } else if (!f.startsWith('.') && !/\.md$/i.test(f)) {
      problems.push(`${rel(full)}:1 not a report (<id>.sql), chart sidecar (<id>.vl.json) or README`);
    }
  }
  if (problems.length) throw new CatalogError(problems);
  const closure = (names: string[]): string[] => {
    const seen = new Set<string>();
    const walk = (n: string) => { if (seen.has(n)) return; seen.add(n); for (const d of marts.get(n)!.depends) walk(d); };
    names.forEach(walk);
    return order.filter((n) => seen.has(n));
  };
  for (const r of reports.values()) r.allMarts = closure(r.marts);
  return { dir, reports, marts, martOrder: order };
}

/** Marts downstream of `names` (those that read them, transitively), names included, in refresh order. */
export function withDependents(catalog: Catalog, names: string[]): string[] {
  const set = new Set(names);
  for (const n of catalog.martOrder) if (catalog.marts.get(n)!.depends.some((d) => set.has(d))) set.add(n);
  return catalog.martOrder.filter((n) => set.has(n));
}

export { parseKeyValues };
