// The theme lives in CSS variables (public/app.css): dark by default, light by OS preference or the toggle.
// Charts read the same variables into their Vega config, so a chart matches the page in both themes.

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** Okabe–Ito based categorical palette (distinguishable with the common colour-vision deficiencies), per theme. */
export function palette(): string[] {
  return Array.from({ length: 8 }, (_, i) => cssVar(`--chart-${i + 1}`, ['#56b4e9', '#e69f00', '#009e73', '#f0e442', '#cc79a7', '#d55e00', '#0072b2', '#999999'][i]));
}

let config: { theme: string; value: Record<string, unknown> } | undefined;

/** A Vega config built from the page's CSS variables (read at render time, so it follows the current theme; read once
 *  per theme, not once per tile: each read of a variable asks for the computed style). A copy: callers may change it. */
export function vegaConfig(): Record<string, unknown> {
  const theme = `${document.documentElement.dataset.theme ?? ''}|${matchMedia('(prefers-color-scheme: light)').matches}`;
  if (config?.theme !== theme) config = { theme, value: readVegaConfig() };
  return structuredClone(config.value);
}

function readVegaConfig(): Record<string, unknown> {
  const fg = cssVar('--fg', '#e5e5e5');
  const muted = cssVar('--fg-muted', '#a3a3a3');
  const grid = cssVar('--chart-grid', '#2e2e2e');
  const font = cssVar('--font', 'system-ui, sans-serif');
  const colors = palette();
  const ramp = cssVar('--chart-ramp', 'viridis');
  return {
    background: null,
    font,
    padding: 4,
    view: { stroke: null },
    title: { color: fg, font, fontSize: 14, fontWeight: 600, anchor: 'start' },
    axis: {
      domainColor: grid, gridColor: grid, tickColor: grid, labelColor: muted, titleColor: muted,
      labelFont: font, titleFont: font, labelFontSize: 11, titleFontSize: 12, titleFontWeight: 500,
    },
    legend: { labelColor: muted, titleColor: muted, labelFont: font, titleFont: font, labelFontSize: 11, orient: 'bottom', columns: 4, labelLimit: 120 },
    header: { labelColor: muted, titleColor: fg },
    text: { color: fg, font },
    mark: { color: colors[0] },
    line: { strokeWidth: 2.5 },
    point: { filled: true },
    bar: { cornerRadiusEnd: 2 },
    arc: { stroke: cssVar('--bg-raised', '#1f1f1f'), strokeWidth: 1 },
    range: { category: colors, ordinal: { scheme: ramp }, heatmap: { scheme: ramp }, ramp: { scheme: ramp } },
    axisQuantitative: { gridDash: [2, 3] },
  };
}

/** Calls `fn` whenever the effective theme may have changed (toggle or OS preference). Returns an unsubscribe. */
export function onThemeChange(fn: () => void): () => void {
  const observer = new MutationObserver(fn);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
  const media = matchMedia('(prefers-color-scheme: light)');
  media.addEventListener('change', fn);
  return () => { observer.disconnect(); media.removeEventListener('change', fn); };
}

/**
 * The header's theme form works without JavaScript (POST /theme sets a cookie and redirects back). With JavaScript we
 * apply the choice in place, store it with the same request, and skip the reload.
 */
export function enhanceThemeToggle() {
  document.addEventListener('submit', (e) => {
    const form = e.target as HTMLFormElement;
    if (!form.matches?.('form.theme-toggle')) return;
    const button = (e as SubmitEvent).submitter as HTMLButtonElement | null;
    const theme = button?.value;
    if (!theme) return;
    e.preventDefault();
    const body = new URLSearchParams({ theme });
    void fetch(form.action, { method: 'POST', body, redirect: 'manual', credentials: 'same-origin' }).catch(() => {});
    if (theme === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.dataset.theme = theme;
    for (const b of form.querySelectorAll<HTMLButtonElement>('button[name=theme]')) b.setAttribute('aria-pressed', String(b.value === theme));
  });
}
