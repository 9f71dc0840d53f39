// Charts: a one-line `-- @chart` declaration or a same-named .vl.json sidecar becomes a Vega-Lite spec; the rows
// are inlined as data.values. Every chart is compiled with vega-lite when the catalog loads, so a broken chart
// stops the server at start instead of failing in a browser.
import * as vl from 'vega-lite';
import { parseKeyValues } from './params.ts';

export type VlSpec = Record<string, any>;

export class ChartError extends Error {}

const TYPES: Record<string, string> = { T: 'temporal', Q: 'quantitative', N: 'nominal', O: 'ordinal' };
const MARKS = ['line', 'bar', 'area', 'point', 'rect', 'arc', 'kpi'] as const;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const FORMATS: Record<string, string> = { currency: '$,.2f', percent: '.1%', number: ',.0f' };

function channel(key: string, v: string): Record<string, unknown> {
  const m = /^([a-z_][a-z0-9_]*):([TQNO])$/.exec(v);
  if (!m) throw new ChartError(`${key}=${v}: write ${key}=<column>:<T|Q|N|O> (snake_case column, type letter)`);
  const enc: Record<string, unknown> = { field: m[1], type: TYPES[m[2]], title: m[1].replace(/_/g, ' ') };
  // Month and date columns are UTC midnights: show them in UTC, or a browser west of Greenwich shows the day before.
  if (m[2] === 'T') enc.scale = { type: 'utc' };
  return enc;
}

/** Builds the spec (without data) of a one-line chart declaration. */
export function chartFromLine(text: string): VlSpec {
  const m = /^(\S+)(.*)$/.exec(text.trim());
  if (!m) throw new ChartError('@chart needs a mark: line | bar | area | point | rect | arc | kpi');
  const mark = m[1];
  if (!MARKS.includes(mark as any)) throw new ChartError(`unknown chart mark "${mark}" (one of ${MARKS.join(', ')})`);
  const { pairs, rest } = parseKeyValues(m[2]);
  if (rest) throw new ChartError(`cannot read "${rest}" (write key=value, quote values with spaces)`);
  const kv = new Map<string, string>();
  for (const [k, v] of pairs) {
    if (kv.has(k)) throw new ChartError(`${k}= given twice`);
    kv.set(k, v);
  }
  const allowed: Record<string, string[]> = {
    line: ['x', 'y', 'color', 'title'], bar: ['x', 'y', 'color', 'title'], area: ['x', 'y', 'color', 'title'],
    point: ['x', 'y', 'color', 'title'], rect: ['x', 'y', 'color', 'title'], arc: ['theta', 'color', 'title'],
    kpi: ['value', 'delta', 'format', 'title'],
  };
  for (const k of kv.keys()) if (!allowed[mark].includes(k)) throw new ChartError(`${k}= is not allowed for ${mark} (allowed: ${allowed[mark].join(', ')})`);
  const title = kv.get('title');
  const base: VlSpec = { $schema: SCHEMA, ...(title ? { title } : {}), width: 'container' };

  if (mark === 'kpi') {
    const value = kv.get('value');
    if (!value || !/^[a-z_][a-z0-9_]*$/.test(value)) throw new ChartError('kpi needs value=<column>');
    const format = kv.get('format') ?? 'number';
    if (!FORMATS[format]) throw new ChartError(`format=${format}: one of ${Object.keys(FORMATS).join(', ')}`);
    const delta = kv.get('delta');
    if (delta !== undefined && !/^[a-z_][a-z0-9_]*$/.test(delta)) throw new ChartError('delta=<column>');
    const layer: VlSpec[] = [{
      mark: { type: 'text', fontSize: 40, fontWeight: 'bold', align: 'center', baseline: 'middle', x: { expr: 'width / 2' }, y: { expr: 'height / 2 - 12' } },
      encoding: { text: { field: value, type: 'quantitative', format: FORMATS[format] } },
    }];
    if (delta) {
      // delta is the change against the previous period as a fraction (0.031 = +3.1 %)
      layer.push({
        mark: { type: 'text', fontSize: 16, align: 'center', baseline: 'middle', x: { expr: 'width / 2' }, y: { expr: 'height / 2 + 24' } },
        encoding: {
          text: { field: delta, type: 'quantitative', format: '+.1%' },
          color: { condition: { test: `datum['${delta}'] < 0`, value: '#e50914' }, value: '#46d369' },
        },
      });
    }
    return { ...base, height: 110, view: { stroke: null }, layer };
  }
  if (mark === 'arc') {
    const theta = kv.get('theta'), color = kv.get('color');
    if (!theta || !color) throw new ChartError('arc needs theta=<column>:Q and color=<column>:N');
    return { ...base, height: 300, mark: { type: 'arc', tooltip: true }, encoding: { theta: channel('theta', theta), color: channel('color', color) } };
  }
  const x = kv.get('x'), y = kv.get('y');
  if (!x || !y) throw new ChartError(`${mark} needs x=<column>:<type> and y=<column>:<type>`);
  if (mark === 'rect' && !kv.get('color')) throw new ChartError('rect (heatmap) needs color=<column>:Q');
  const encoding: VlSpec = { x: channel('x', x), y: channel('y', y) };
  if (kv.get('color')) encoding.color = channel('color', kv.get('color')!);
  const markDef: VlSpec = { type: mark, tooltip: true };
  if (mark === 'line') markDef.point = true;
  return { ...base, height: 300, mark: markDef, encoding };
}

/** A sidecar spec: JSON text without data. */
export function chartFromSidecar(text: string): VlSpec {
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e: any) {
    const pos = /position (\d+)/.exec(e.message);
    const line = pos ? text.slice(0, Number(pos[1])).split('\n').length : 1;
    throw Object.assign(new ChartError(`invalid JSON: ${e.message}`), { line });
  }
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new ChartError('a Vega-Lite spec is a JSON object');
  const s = spec as VlSpec;
  if ('data' in s) throw new ChartError('leave "data" out: the server inlines the report rows as data.values');
  return { $schema: SCHEMA, ...s };
}

/** The spec with rows inlined; a month still in progress (a row with partial: true) gets its own mark. */
export function withData(spec: VlSpec, rows: unknown[]): VlSpec {
  return { ...markPartial(spec, rows), data: { values: rows } };
}

// Rows of a month still in progress carry `partial: true` (README "Metrics: reports and marts"). On a chart whose x axis is `month` that month
// gets a dashed rule and a "so far" label (same x encoding, so the same scale), whatever drew the rest of the chart.
function markPartial(spec: VlSpec, rows: unknown[]): VlSpec {
  if (!rows.some((r) => (r as any)?.partial === true)) return spec;
  const x = spec.encoding?.x ?? spec.layer?.find((l: VlSpec) => l.encoding?.x)?.encoding?.x;
  if (!x || x.field !== 'month' || spec.facet || spec.concat || spec.hconcat || spec.vconcat || spec.repeat) return spec;
  const { $schema, title, width, height, config, ...inner } = spec;
  const at = { field: x.field, type: x.type, ...(x.timeUnit ? { timeUnit: x.timeUnit } : {}) };
  return {
    $schema, ...(title !== undefined ? { title } : {}), ...(width !== undefined ? { width } : {}),
    ...(height !== undefined ? { height } : {}), ...(config ? { config } : {}),
    layer: [inner, {
      transform: [{ filter: 'datum.partial === true' }],
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 4], strokeWidth: 1.5 }, encoding: { x: at } },
        { mark: { type: 'text', text: 'so far', baseline: 'top', dy: 2, fontStyle: 'italic' }, encoding: { x: at, y: { value: 0 } } },
      ],
    }],
  };
}

/** Compiles with vega-lite; warnings count as errors (they mean a channel or field was dropped). Returns the Vega spec. */
export function compileChart(spec: VlSpec, rows: unknown[] = []): Record<string, any> {
  const problems: string[] = [];
  const logger: any = {
    level() { return logger; },
    warn: (...a: unknown[]) => { problems.push(a.map(String).join(' ')); return logger; },
    error: (...a: unknown[]) => { problems.push(a.map(String).join(' ')); return logger; },
    info: () => logger, debug: () => logger,
  };
  let out: { spec: Record<string, any> };
  try {
    out = vl.compile(withData(spec, rows) as any, { logger }) as any;
  } catch (e: any) {
    throw new ChartError(`does not compile with vega-lite: ${e.message}`);
  }
  if (problems.length) throw new ChartError(`vega-lite: ${problems.join('; ')}`);
  return out.spec;
}
