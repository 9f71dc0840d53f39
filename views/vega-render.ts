// The one module that imports vega-embed (and with it vega and vega-lite). It is loaded on demand through
// loadVega() in vega.ts, so esbuild puts it in its own chunk and pages fetch it once, in parallel with their data.
import embed, { type Result, type VisualizationSpec } from 'vega-embed';
import { compile, version as vlVersion } from 'vega-lite';
import { logger } from 'vega';
import { expressionInterpreter } from 'vega-interpreter';

export type { Result };

/**
 * Renders a Vega-Lite spec. `ast: true` + the expression interpreter: Vega never compiles expressions with
 * new Function(), so the page's Content-Security-Policy needs no 'unsafe-eval'. No default stylesheet and no actions
 * menu: both would inject inline <style> (blocked by the CSP); the tile draws its own export buttons.
 * The Vega-Lite -> Vega compilation is cached (see toVega), so Vega gets an already compiled spec and no config
 * (vega-embed does the same after compiling: the config is already applied).
 */
export function render(el: HTMLElement, spec: VisualizationSpec, config: Record<string, unknown>,
  renderer: 'svg' | 'canvas' = 'svg'): Promise<Result> {
  return embed(el, toVega(spec as Record<string, any>, config) as VisualizationSpec, {
    mode: 'vega',
    renderer,
    actions: false,
    defaultStyle: false,
    ast: true,
    expr: expressionInterpreter,
    config: {},
    tooltip: { disableDefaultStyle: true, theme: 'marquee' },
    logLevel: 0,
  });
}

// Compiling Vega-Lite costs as much as drawing a small chart, and a tile's spec differs between loads only in its
// rows (a filter change, a refresh): compile the spec with a stand-in for the rows, once per spec and theme config,
// and put the rows into the compiled copy. Kept for the tab's session, so going back to a dashboard skips it too.
const MARK = 'mq:rows';
const STORE = `mq-vega:${vlVersion}:`;
const memo = new Map<string, string>();

/** The Vega spec of a Vega-Lite spec whose rows are inline (data.values), from the cache when it was compiled before. */
export function toVega(spec: Record<string, any>, config: Record<string, unknown>): Record<string, any> {
  const rows = spec.data?.values;
  if (!Array.isArray(rows)) return compileNow(spec, config);
  const shape = { ...spec, data: { ...spec.data, values: [{ [MARK]: true }] } };
  const key = JSON.stringify([shape, config]);
  const hash = STORE + hashOf(key);
  let text = memo.get(key) ?? stored(hash, key);
  if (!text) {
    text = JSON.stringify(compileNow(shape, config));
    memo.set(key, text);
    try { sessionStorage.setItem(hash, JSON.stringify([key, text])); } catch { /* full or disabled: memory only */ }
  }
  const vg = JSON.parse(text);
  const source = (vg.data as any[] | undefined)?.find((d) => d.values?.[0]?.[MARK] === true);
  if (!source) return compileNow(spec, config); // the rows were not kept as one data set: compile them in
  source.values = rows;
  return vg;
}

function stored(hash: string, key: string): string | undefined {
  try {
    const [k, text] = JSON.parse(sessionStorage.getItem(hash) ?? 'null') ?? [];
    if (k !== key || typeof text !== 'string') return undefined;
    memo.set(key, text);
    return text;
  } catch { return undefined; }
}

function compileNow(spec: Record<string, any>, config: Record<string, unknown>): Record<string, any> {
  return compile(spec as any, { config: config as any, logger: logger(0) }).spec;
}

/** 53-bit string hash (cyrb53), only to name the stored entry: the entry keeps its full key and is checked against it. */
function hashOf(s: string): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}
