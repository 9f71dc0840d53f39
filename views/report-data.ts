// The report API's answer (GET /api/reports/:id) and what the tiles derive from it: rows, KPI fields, a text summary.

export interface ReportResponse {
  id: string;
  title: string;
  params: Record<string, unknown>;
  asOf: string | null;
  nextRefresh: string | null;
  stale: boolean;
  rowCount: number;
  /** more rows existed than the report's row cap; the chart shows the first rowCap */
  truncated?: boolean;
  rowCap?: number;
  /** a paged report (@pagesize): which page of rows this is (rowCap rows a page); truncated: more pages follow */
  page?: number;
  spec: any;
}

export type Row = Record<string, unknown>;

/** Which rows a page of a paged report holds ("rows 1,001–2,000", "row 5", "no rows"): the page and the chart say it alike. */
export function pageRows(page: number, pageSize: number, rowCount: number): string {
  const first = (page - 1) * pageSize;
  const n = (i: number) => i.toLocaleString('en-US');
  if (!rowCount) return 'no rows';
  return rowCount === 1 ? `row ${n(first + 1)}` : `rows ${n(first + 1)}–${n(first + rowCount)}`;
}

export function rowsOf(spec: any): Row[] {
  if (Array.isArray(spec?.data?.values)) return spec.data.values;
  const named = spec?.data?.name && spec?.datasets?.[spec.data.name];
  return Array.isArray(named) ? named : [];
}

export interface Kpi {
  value: string;
  /** Field holding the change against the previous period as a fraction (0.031 = +3.1 %). */
  delta?: string;
  format: 'currency' | 'percent' | 'number';
}

const D3_FORMATS: Record<string, Kpi['format']> = { '$,.2f': 'currency', '.1%': 'percent', ',.0f': 'number' };

/**
 * A `@chart kpi` report. The engine compiles it to a layered spec of text marks: the first shows the value field
 * (its d3 format says currency, percent or number), the second the delta field. usermeta.kpi = {value, delta?,
 * format?} is honoured too, for sidecar specs that want a KPI tile.
 */
export function kpiOf(spec: any): Kpi | undefined {
  const k = spec?.usermeta?.kpi;
  if (k && typeof k.value === 'string') {
    const format = ['currency', 'percent', 'number'].includes(k.format) ? k.format : 'number';
    return { value: k.value, delta: typeof k.delta === 'string' ? k.delta : undefined, format };
  }
  const layers = spec?.layer;
  if (!Array.isArray(layers) || !layers.length || layers.length > 2) return undefined;
  const texts = layers.map((l: any) => (typeof l?.mark === 'string' ? l.mark : l?.mark?.type) === 'text' ? l?.encoding?.text : undefined);
  if (texts.some((t: any) => typeof t?.field !== 'string')) return undefined;
  return { value: texts[0].field, delta: texts[1]?.field, format: D3_FORMATS[texts[0].format] ?? 'number' };
}

const numberFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const compactMoney = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', notation: 'compact', maximumFractionDigits: 2 });
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat('en-US', { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
const compactNumber = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 2 });

export function formatValue(v: unknown, format: Kpi['format']): string {
  if (v === null || v === undefined || v === '') return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (format === 'currency') return Math.abs(n) >= 100_000 ? compactMoney.format(n) : money.format(n);
  if (format === 'percent') return percent.format(n);
  return Math.abs(n) >= 100_000 ? compactNumber.format(n) : numberFmt.format(n);
}

/** "October 2026", or "November 2026 so far" for the current month, whose flows (cash, churn) are still partial. */
export function kpiPeriod(month: unknown, now = new Date()): string {
  if (typeof month !== 'string' || !/^\d{4}-\d{2}/.test(month)) return '';
  const [y, m] = month.slice(0, 7).split('-').map(Number);
  const name = new Date(Date.UTC(y, m - 1, 1)).toLocaleString('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });
  const current = y === now.getUTCFullYear() && m === now.getUTCMonth() + 1;
  return current ? `${name} so far (day ${now.getUTCDate()})` : name;
}

/** A relative change (fraction) as a signed percentage: "+3.1 %". */
export function formatChange(d: number): string {
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  return `${sign}${numberFmt.format(Math.abs(d) * 100)} %`;
}

export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 4 });
  return String(v);
}

const MARK_NAMES: Record<string, string> = {
  line: 'Line chart', bar: 'Bar chart', area: 'Area chart', point: 'Scatter plot', rect: 'Heatmap', arc: 'Pie chart',
  text: 'Value', tick: 'Tick chart', circle: 'Scatter plot', square: 'Scatter plot', rule: 'Rule chart',
};

function channel(spec: any, name: string): { field?: string; title?: string } {
  const enc = spec?.encoding ?? spec?.layer?.find((l: any) => l?.encoding?.[name])?.encoding;
  const c = enc?.[name];
  return c && typeof c === 'object' ? { field: typeof c.field === 'string' ? c.field : undefined, title: typeof c.title === 'string' ? c.title : undefined } : {};
}

/** One or two sentences for screen readers: what is plotted and its range, from the spec and its rows. */
export function describe(spec: any, rows: Row[], title: string): string {
  const markType = typeof spec?.mark === 'string' ? spec.mark : spec?.mark?.type ?? spec?.layer?.[0]?.mark?.type ?? spec?.layer?.[0]?.mark;
  const kind = MARK_NAMES[markType] ?? 'Chart';
  const x = channel(spec, 'x'), y = channel(spec, 'y'), color = channel(spec, 'color'), theta = channel(spec, 'theta');
  const parts = [`${kind} of ${title}`];
  if (!rows.length) return `${parts[0]}: no data for these filters.`;
  if (y.field && x.field) parts.push(`${y.title ?? y.field} by ${x.title ?? x.field}`);
  else if (theta.field) parts.push(`${theta.title ?? theta.field} by ${color.title ?? color.field ?? 'category'}`);
  let text = `${parts.join(': ')}${color.field && x.field ? `, coloured by ${color.title ?? color.field}` : ''}; ${rows.length} data rows.`;
  if (x.field) {
    const xs = rows.map((r) => r[x.field!]).filter((v) => v !== null && v !== undefined).map(String);
    if (xs.length) text += ` ${x.title ?? x.field} from ${xs[0]} to ${xs[xs.length - 1]}.`;
  }
  const valueField = y.field && rows.every((r) => typeof r[y.field!] === 'number' || r[y.field!] === null) ? y.field : theta.field;
  if (valueField) {
    const ys = rows.map((r) => r[valueField]).filter((v): v is number => typeof v === 'number');
    if (ys.length) text += ` ${valueField} ranges from ${formatCell(Math.min(...ys))} to ${formatCell(Math.max(...ys))}.`;
  }
  return text;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "26 Nov 2026, 09:15 UTC" (by hand: the first Intl.DateTimeFormat with a time zone name costs a page tens of ms) */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`;
}
