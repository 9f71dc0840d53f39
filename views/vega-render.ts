// The one module that imports vega-embed (and with it vega and vega-lite). It is loaded on demand through
// loadVega() in vega.ts, so esbuild puts it in its own chunk and pages fetch it once, in parallel with their data.
import embed, { type Result, type VisualizationSpec } from 'vega-embed';
import { expressionInterpreter } from 'vega-interpreter';

export type { Result };

/**
 * Renders a Vega-Lite spec. `ast: true` + the expression interpreter: Vega never compiles expressions with
 * new Function(), so the page's Content-Security-Policy needs no 'unsafe-eval'. No default stylesheet and no actions
 * menu: both would inject inline <style> (blocked by the CSP); the tile draws its own export buttons.
 */
export function render(el: HTMLElement, spec: VisualizationSpec, config: Record<string, unknown>,
  renderer: 'svg' | 'canvas' = 'svg'): Promise<Result> {
  return embed(el, spec, {
    mode: 'vega-lite',
    renderer,
    actions: false,
    defaultStyle: false,
    ast: true,
    expr: expressionInterpreter,
    config: config as any,
    tooltip: { disableDefaultStyle: true, theme: 'marquee' },
    logLevel: 0,
  });
}
