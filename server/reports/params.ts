// Report parameters: the `-- @param` declaration, validation of a query string against it, the canonical query
// string (defaults omitted, keys sorted, multi-values repeated and sorted) and the values bound as $n.
// Pure functions except the lookup of multi-select values, which the engine passes in.

export type ParamType = 'date' | 'month' | 'int' | 'enum' | 'multi' | 'boolean';
export const PARAM_TYPES: ParamType[] = ['date', 'month', 'int', 'enum', 'multi', 'boolean'];
// customer_countries: the countries customers are in (users.country), from the data, not a hard-coded list
export const LOOKUPS = ['plans', 'genres', 'countries', 'customer_countries', 'title_types'] as const;
export type Lookup = (typeof LOOKUPS)[number];

export interface ParamDecl {
  name: string;
  type: ParamType;
  label: string;
  /** the default as written (literal or relative such as -12m); undefined: absent means NULL */
  default?: string;
  min?: string;
  max?: string;
  /** enum / multi with values= */
  values?: string[];
  lookup?: Lookup;
  line: number;
}

/** A parameter value after validation: the canonical text form(s) and what is bound. */
export interface ParamValue { text: string | string[] | null; bound: unknown }

export class ParamDeclError extends Error {}

const NAME = /^[a-z][a-z0-9_]{0,62}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH = /^(\d{4})-(\d{2})$/;
const INT = /^-?\d{1,10}$/;
const RELATIVE = /^(today|[+-]?\d{1,4}[dmy])$/;

/** Splits `key=value key="value with spaces"` after the name and type. */
export function parseKeyValues(text: string): { pairs: [string, string][]; rest: string } {
  const pairs: [string, string][] = [];
  const re = /\s*([a-z_]+)=(?:"([^"]*)"|(\S+))/y;
  let pos = 0;
  let m: RegExpExecArray | null;
  while (pos < text.length) {
    if (/^\s*$/.test(text.slice(pos))) { pos = text.length; break; }
    re.lastIndex = pos;
    m = re.exec(text);
    if (!m) break;
    pairs.push([m[1], m[2] ?? m[3]]);
    pos = re.lastIndex;
  }
  return { pairs, rest: text.slice(pos).trim() };
}

export function parseParamDecl(text: string, line: number): ParamDecl {
  const m = /^(\S+)\s+(\S+)(.*)$/.exec(text.trim());
  if (!m) throw new ParamDeclError('@param needs a name and a type: "@param from month default=-12m"');
  const [, name, type, tail] = m;
  if (!NAME.test(name)) throw new ParamDeclError(`parameter name "${name}" must be lowercase snake_case`);
  if (!PARAM_TYPES.includes(type as ParamType)) {
    throw new ParamDeclError(`parameter ${name}: unknown type "${type}" (one of ${PARAM_TYPES.join(', ')})`);
  }
  const { pairs, rest } = parseKeyValues(tail);
  if (rest) throw new ParamDeclError(`parameter ${name}: cannot read "${rest}" (write key=value, quote values with spaces)`);
  const decl: ParamDecl = { name, type: type as ParamType, label: name.replace(/_/g, ' '), line };
  const allowed: Record<ParamType, string[]> = {
    date: ['default', 'label', 'min', 'max'], month: ['default', 'label', 'min', 'max'], int: ['default', 'label', 'min', 'max'],
    enum: ['default', 'label', 'values'], multi: ['default', 'label', 'values', 'lookup'], boolean: ['default', 'label'],
  };
  for (const [k, v] of pairs) {
    if (!allowed[decl.type].includes(k)) throw new ParamDeclError(`parameter ${name}: "${k}=" is not allowed for type ${type} (allowed: ${allowed[decl.type].join(', ')})`);
    if (k === 'default') decl.default = v;
    else if (k === 'label') decl.label = v;
    else if (k === 'min') decl.min = v;
    else if (k === 'max') decl.max = v;
    else if (k === 'values') decl.values = v.split(',').map((s) => s.trim()).filter(Boolean);
    else if (k === 'lookup') {
      if (!LOOKUPS.includes(v as Lookup)) throw new ParamDeclError(`parameter ${name}: unknown lookup "${v}" (one of ${LOOKUPS.join(', ')})`);
      decl.lookup = v as Lookup;
    }
  }
  if (decl.type === 'enum' && !decl.values?.length) throw new ParamDeclError(`parameter ${name}: enum needs values="a,b,c"`);
  if (decl.type === 'multi' && !decl.values?.length && !decl.lookup) throw new ParamDeclError(`parameter ${name}: multi needs lookup=... or values="a,b"`);
  if (decl.type === 'multi' && decl.values?.length && decl.lookup) throw new ParamDeclError(`parameter ${name}: give lookup= or values=, not both`);
  // Bounds and the default must themselves be valid values (relative defaults are checked for form only).
  const now = new Date(Date.UTC(2000, 0, 15));
  for (const key of ['min', 'max'] as const) {
    const v = decl[key];
    if (v === undefined) continue;
    const err = checkScalar({ ...decl, min: undefined, max: undefined }, v, now);
    if (typeof err === 'string') throw new ParamDeclError(`parameter ${name}: ${key}=${v} is not a valid ${type}`);
  }
  if (decl.default !== undefined) {
    if (decl.type === 'multi') {
      for (const v of decl.default.split(',').map((s) => s.trim()).filter(Boolean)) {
        if (decl.values && !decl.values.includes(v)) throw new ParamDeclError(`parameter ${name}: default "${v}" is not one of values`);
      }
    } else if (!(isRelative(decl) && RELATIVE.test(decl.default))) {
      const err = checkScalar(decl, decl.default, now);
      if (typeof err === 'string') throw new ParamDeclError(`parameter ${name}: default=${decl.default}: ${err}`);
    }
  }
  return decl;
}

const isRelative = (d: ParamDecl) => d.type === 'date' || d.type === 'month';
export const hasRelativeDefault = (d: ParamDecl) => d.default !== undefined && isRelative(d) && RELATIVE.test(d.default);

function validDate(y: number, m: number, d: number) {
  const t = new Date(Date.UTC(y, m - 1, d));
  return y >= 1900 && y <= 2999 && t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Resolves a relative default (today, -30d, -12m, 0m, -1y) against `now` (UTC) to a literal of the param's type. */
export function resolveRelative(decl: ParamDecl, spec: string, now: Date): string {
  let y = now.getUTCFullYear(), m = now.getUTCMonth(), d = now.getUTCDate();
  if (spec !== 'today') {
    const n = Number(spec.slice(0, -1));
    const unit = spec.at(-1);
    if (unit === 'd') {
      const t = new Date(Date.UTC(y, m, d + n));
      y = t.getUTCFullYear(); m = t.getUTCMonth(); d = t.getUTCDate();
    } else {
      const months = unit === 'y' ? n * 12 : n;
      const first = new Date(Date.UTC(y, m + months, 1));
      y = first.getUTCFullYear(); m = first.getUTCMonth();
      d = Math.min(d, new Date(Date.UTC(y, m + 1, 0)).getUTCDate());
    }
  }
  return decl.type === 'month' ? `${y}-${pad(m + 1)}` : `${y}-${pad(m + 1)}-${pad(d)}`;
}

/** Validates one scalar text against the declaration: the canonical text and bound value, or an error message. */
function checkScalar(decl: ParamDecl, raw: string, now: Date): ParamValue | string {
  const v = raw.trim();
  switch (decl.type) {
    case 'date': {
      const m = DATE.exec(v);
      if (!m || !validDate(+m[1], +m[2], +m[3])) return `must be a date like 2026-01-31, got "${raw}"`;
      if (decl.min && v < boundOf(decl, decl.min, now)) return `must be on or after ${boundOf(decl, decl.min, now)}`;
      if (decl.max && v > boundOf(decl, decl.max, now)) return `must be on or before ${boundOf(decl, decl.max, now)}`;
      return { text: v, bound: v };
    }
    case 'month': {
      const m = MONTH.exec(v);
      if (!m || !validDate(+m[1], +m[2], 1)) return `must be a month like 2026-01, got "${raw}"`;
      if (decl.min && v < boundOf(decl, decl.min, now)) return `must be ${boundOf(decl, decl.min, now)} or later`;
      if (decl.max && v > boundOf(decl, decl.max, now)) return `must be ${boundOf(decl, decl.max, now)} or earlier`;
      return { text: v, bound: `${v}-01` };
    }
    case 'int': {
      if (!INT.test(v)) return `must be a whole number, got "${raw}"`;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n > 2147483647 || n < -2147483648) return `is out of range`;
      if (decl.min !== undefined && n < Number(decl.min)) return `must be at least ${decl.min}`;
      if (decl.max !== undefined && n > Number(decl.max)) return `must be at most ${decl.max}`;
      return { text: String(n), bound: n };
    }
    case 'enum':
      if (!decl.values!.includes(v)) return `must be one of ${decl.values!.join(', ')}, got "${raw}"`;
      return { text: v, bound: v };
    case 'boolean':
      if (v === 'true' || v === '1') return { text: 'true', bound: true };
      if (v === 'false' || v === '0') return { text: 'false', bound: false };
      return `must be true or false, got "${raw}"`;
    default:
      return `is not a scalar`;
  }
}

function boundOf(decl: ParamDecl, b: string, now: Date) {
  return RELATIVE.test(b) && isRelative(decl) ? resolveRelative(decl, b, now) : b;
}

/** Lookup values a multi param accepts; the engine supplies them (from the values list or the database). */
export type LookupFn = (decl: ParamDecl, candidates: string[]) => Promise<Set<string>>;

export interface ParsedParams {
  /** every declared param with its resolved canonical text (defaults applied; null when absent and no default) */
  values: Record<string, string | string[] | null>;
  /** bound values by param name */
  bound: Record<string, unknown>;
  /** canonical query string: explicit non-default values only, keys sorted, multi values repeated and sorted */
  query: string;
  /** stable key of the resolved values (for caches and ETags: relative defaults resolve differently over time) */
  key: string;
}

export class ParamError extends Error {
  constructor(public fields: Record<string, string>) {
    super(`Invalid parameters: ${Object.entries(fields).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  }
}

const MAX_MULTI = 200;

export async function parseParams(decls: ParamDecl[], query: URLSearchParams, now: Date, lookup: LookupFn): Promise<ParsedParams> {
  const fields: Record<string, string> = {};
  const byName = new Map(decls.map((d) => [d.name, d]));
  const given = new Map<string, string[]>();
  for (const [k, v] of query) {
    if (!byName.has(k)) { fields[k.slice(0, 64) || '(empty name)'] = 'is not a parameter of this report'; continue; }
    given.set(k, [...(given.get(k) ?? []), v]);
  }
  const values: Record<string, string | string[] | null> = {};
  const bound: Record<string, unknown> = {};
  const explicit: [string, string][] = [];
  for (const d of decls) {
    // A plain GET form sends empty fields: they mean "not given".
    const raw = (given.get(d.name) ?? []).filter((v) => v.trim() !== '');
    if (d.type === 'multi') {
      const items = raw.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
      if (items.length > MAX_MULTI) { fields[d.name] = `accepts at most ${MAX_MULTI} values`; continue; }
      const chosen = [...new Set(items)].sort();
      const fromDefault = !chosen.length;
      const effective = fromDefault ? [...new Set((d.default ?? '').split(',').map((s) => s.trim()).filter(Boolean))].sort() : chosen;
      if (!fromDefault) {
        const known = d.values ? new Set(d.values) : await lookup(d, chosen);
        const bad = chosen.filter((v) => !known.has(v));
        if (bad.length) { fields[d.name] = `unknown value${bad.length > 1 ? 's' : ''} ${bad.map((b) => `"${b.slice(0, 80)}"`).join(', ')}`; continue; }
        const def = effective.join(',') === [...new Set((d.default ?? '').split(',').map((s) => s.trim()).filter(Boolean))].sort().join(',');
        if (!def) for (const v of chosen) explicit.push([d.name, v]);
      }
      values[d.name] = effective.length ? effective : null;
      bound[d.name] = effective.length ? effective : null;
      continue;
    }
    if (raw.length > 1) { fields[d.name] = 'give one value'; continue; }
    if (raw.length === 1) {
      const r = checkScalar(d, raw[0], now);
      if (typeof r === 'string') { fields[d.name] = r; continue; }
      values[d.name] = r.text as string;
      bound[d.name] = r.bound;
      // A value equal to a literal default is the default: omitted. Relative defaults are never omitted when given
      // explicitly, so a bookmarked URL keeps meaning the same months later.
      if (!(d.default !== undefined && !hasRelativeDefault(d) && canonicalDefault(d, now) === r.text)) explicit.push([d.name, r.text as string]);
      continue;
    }
    if (d.default === undefined) { values[d.name] = null; bound[d.name] = null; continue; }
    const r = checkScalar(d, hasRelativeDefault(d) ? resolveRelative(d, d.default, now) : d.default, now);
    if (typeof r === 'string') { fields[d.name] = `default ${r}`; continue; }
    values[d.name] = r.text as string;
    bound[d.name] = r.bound;
  }
  // A period is from <= to by convention of the names.
  const from = byName.get('from'), to = byName.get('to');
  if (from && to && from.type === to.type && typeof values.from === 'string' && typeof values.to === 'string'
    && !fields.from && !fields.to && values.from > values.to) {
    fields.to = `must not be before from (${values.from})`;
  }
  if (Object.keys(fields).length) throw new ParamError(fields);
  explicit.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const qs = new URLSearchParams(explicit).toString();
  const key = JSON.stringify(decls.map((d) => [d.name, values[d.name]]));
  return { values, bound, query: qs, key };
}

function canonicalDefault(d: ParamDecl, now: Date): string | undefined {
  if (d.default === undefined) return undefined;
  const r = checkScalar(d, d.default, now);
  return typeof r === 'string' ? undefined : (r.text as string);
}

export function sqlTypeOf(d: ParamDecl): string {
  switch (d.type) {
    case 'date': case 'month': return 'date';
    case 'int': return 'integer';
    case 'boolean': return 'boolean';
    case 'multi': return 'text[]';
    default: return 'text';
  }
}
