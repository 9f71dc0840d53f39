// Dashboard filter state, shared by the server (renders the page and the no-JS form) and the browser (filter bar,
// history API): the URL is the state, so both sides must read, canonicalize and resolve it identically.
// Pure functions only: no DOM, no Node.

/** Relative periods, each ending with the current month. */
export const PERIODS = {
  '3m': 'Last 3 months',
  '6m': 'Last 6 months',
  '12m': 'Last 12 months',
  ytd: 'Year to date',
} as const;
export type Period = keyof typeof PERIODS;

export interface PeriodFilter { name: 'period'; type: 'period'; label?: string; default: Period }
export interface ChoiceFilter {
  name: string;
  type: 'multi' | 'enum';
  label?: string;
  /** [value, label] pairs; resolved by the server from `values` or a lookup. */
  options: [string, string][];
  /** enum only: the value used when the URL has none. */
  default?: string;
}
export type Filter = PeriodFilter | ChoiceFilter;

/** What the URL says, canonical: relative period or fixed months, and the chosen values of each choice filter. */
export interface FilterState {
  period?: Period;
  from?: string;
  to?: string;
  choices: Record<string, string[]>;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

export class FilterError extends Error {
  constructor(public field: string, message: string) { super(message); }
}

/** Reads a query string; empty values (from the plain GET form) count as absent. Throws FilterError naming the field. */
export function parseState(query: URLSearchParams, filters: Filter[], now = new Date()): FilterState {
  const state: FilterState = { choices: {} };
  const known = new Set<string>();
  for (const f of filters) {
    if (f.type === 'period') {
      known.add('period'); known.add('from'); known.add('to');
      const from = query.get('from') || undefined;
      const to = query.get('to') || undefined;
      for (const [k, v] of [['from', from], ['to', to]] as const) {
        // years 1900-2999 as report parameters accept (server/reports/params.ts): a tile must not be sent a month it refuses
        const year = v === undefined ? 0 : Number(MONTH.exec(v)?.[1] ?? 0);
        if (v !== undefined && (year < 1900 || year > 2999)) throw new FilterError(k, `${k} must be a month like 2026-01 (years 1900 to 2999), got "${v}"`);
      }
      if (from && to && from > to) throw new FilterError('from', `from (${from}) is after to (${to})`);
      const period = query.get('period') || undefined;
      if (period !== undefined && !Object.hasOwn(PERIODS, period)) {
        throw new FilterError('period', `period must be one of ${Object.keys(PERIODS).join(', ')}, got "${period}"`);
      }
      // The form shows the months of the relative period and sends both: months equal to the period's own keep it
      // relative (so a bookmark still means "last 6 months" later); other months mean "this fixed range".
      const relative = (period ?? f.default) as Period;
      const own = resolvePeriod({ period: relative, choices: {} }, f, now);
      if ((from || to) && !(from === own.from && to === own.to && period !== undefined)) { state.from = from; state.to = to; }
      else if (period && period !== f.default) state.period = period as Period;
    } else {
      known.add(f.name);
      const allowed = new Set(f.options.map(([v]) => v));
      const values = [...new Set(query.getAll(f.name).filter((v) => v !== ''))];
      for (const v of values) {
        if (!allowed.has(v)) throw new FilterError(f.name, `${f.name} must be one of ${[...allowed].join(', ')}, got "${v}"`);
      }
      if (f.type === 'enum' && values.length > 1) throw new FilterError(f.name, `${f.name} takes one value`);
      // Canonical order is the declared order; an enum at its default is omitted.
      const ordered = f.options.map(([v]) => v).filter((v) => values.includes(v));
      if (ordered.length && !(f.type === 'enum' && ordered[0] === f.default)) state.choices[f.name] = ordered;
    }
  }
  for (const key of new Set(query.keys())) {
    if (!known.has(key)) throw new FilterError(key, `unknown filter "${key}"`);
  }
  return state;
}

/** The canonical query string of a state: defaults omitted, filters in declaration order, multi-values repeated. */
export function toQuery(state: FilterState, filters: Filter[]): string {
  const q = new URLSearchParams();
  for (const f of filters) {
    if (f.type === 'period') {
      if (state.from || state.to) {
        if (state.from) q.set('from', state.from);
        if (state.to) q.set('to', state.to);
      } else if (state.period && state.period !== f.default) q.set('period', state.period);
    } else {
      for (const v of state.choices[f.name] ?? []) q.append(f.name, v);
    }
  }
  return q.toString();
}

export function monthOf(d: Date): string {
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

export function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number);
  const total = y * 12 + (m - 1) + n;
  return `${Math.floor(total / 12)}-${String((total % 12) + 1).padStart(2, '0')}`;
}

/** The months a state covers at `now` (UTC): a relative period ends with the current month. */
export function resolvePeriod(state: FilterState, filter: PeriodFilter, now: Date): { from: string; to: string; label: string } {
  const current = monthOf(now);
  if (state.from || state.to) {
    const to = state.to ?? (state.from! > current ? state.from! : current);
    const from = state.from ?? addMonths(to, -11);
    return { from, to, label: `${from} to ${to}` };
  }
  const period = state.period ?? filter.default;
  const from = period === 'ytd' ? `${current.slice(0, 4)}-01` : addMonths(current, -(Number(period.slice(0, -1)) - 1));
  return { from, to: current, label: PERIODS[period] };
}

export type FixedParams = Record<string, string | string[]>;

/**
 * The query string one tile fetches: its fixed params, plus each dashboard filter the report declares a parameter
 * for (`accepts`). A filter the report does not accept never changes its query, so changing it refetches nothing.
 * The period filter feeds `from` and `to`, and `month` (its last month) for single-month reports such as KPIs.
 */
export function tileQuery(accepts: string[], fixed: FixedParams, state: FilterState, filters: Filter[], now: Date): string {
  const q = new URLSearchParams();
  const set = new Set(accepts);
  for (const f of filters) {
    if (f.type === 'period') {
      const { from, to } = resolvePeriod(state, f, now);
      if (set.has('from') && !('from' in fixed)) q.set('from', from);
      if (set.has('to') && !('to' in fixed)) q.set('to', to);
      // Single-month reports (KPI tiles) under fixed months show the range's last month. Under a relative period
      // (which ends with the current, unfinished month) the report's own default decides: stock KPIs (MRR, active
      // subscribers) default to this month, flow KPIs (churn, NRR, net cash) to the last complete month, so a
      // part-month is never compared with a full one.
      if (set.has('month') && !('month' in fixed) && (state.from || state.to)) q.set('month', to);
    } else if (set.has(f.name) && !(f.name in fixed)) {
      for (const v of state.choices[f.name] ?? (f.type === 'enum' && f.default ? [f.default] : [])) q.append(f.name, v);
    }
  }
  for (const [k, v] of Object.entries(fixed)) for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  const sorted = [...q.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new URLSearchParams(sorted).toString();
}
