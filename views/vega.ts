// vega-embed is loaded once per page, on first use, however many chart tiles ask for it.
type VegaModule = typeof import('./vega-render.ts');
let loading: Promise<VegaModule> | undefined;

export function loadVega(): Promise<VegaModule> {
  loading ??= import('./vega-render.ts').catch((e) => {
    loading = undefined; // a failed download (offline, deploy in progress) may be retried by the next tile
    throw e;
  });
  return loading;
}
