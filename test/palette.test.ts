// The chart palettes in public/app.css (read by views/theme.ts into every chart's Vega config):
// - each colour has at least 3:1 contrast against its theme's tile and page backgrounds (WCAG 2.1, 1.4.11 non-text);
// - the colours stay apart under simulated protanopia, deuteranopia and tritanopia (Machado et al. 2009, full
//   severity; CIE76 ΔE in CIELAB) at least as well as the original Okabe–Ito palette does (its floor: 7.1);
// - the "Auto" light block (prefers-color-scheme) repeats the [data-theme=light] values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';

const css = fs.readFileSync(path.resolve(import.meta.dirname, '../public/app.css'), 'utf8');

/** The custom properties of every rule whose selector is exactly `selector` (later rules override earlier ones). */
function vars(selector: string): Record<string, string> {
  const out: Record<string, string> = {};
  const esc = selector.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const m of css.matchAll(new RegExp(`(?:^|\\n)\\s*${esc}\\s*\\{([^}]*)\\}`, 'g'))) {
    for (const d of m[1].matchAll(/(--[\w-]+)\s*:\s*([^;]+);/g)) out[d[1]] = d[2].trim();
  }
  return out;
}

const lin = (v: number) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
const rgb = (h: string) => {
  const x = h.length === 4 ? h.slice(1).split('').map((c) => c + c).join('') : h.slice(1);
  return [0, 2, 4].map((i) => lin(parseInt(x.slice(i, i + 2), 16) / 255));
};
const luminance = (h: string) => { const [r, g, b] = rgb(h); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
export function contrast(a: string, b: string) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
const CVD: Record<string, number[][]> = {
  normal: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
  protan: [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
  deutan: [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
  tritan: [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
};
function lab(h: string, m: number[][]) {
  const c = rgb(h);
  const [r, g, b] = m.map((row) => Math.min(1, Math.max(0, row[0] * c[0] + row[1] * c[1] + row[2] * c[2])));
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  const X = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047), Y = f(0.2126 * r + 0.7152 * g + 0.0722 * b);
  const Z = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
  return [116 * Y - 16, 500 * (X - Y), 200 * (Y - Z)];
}
/** The closest pair of a palette under each simulated vision. */
function closest(colors: string[]) {
  let min = { d: Infinity, where: '' };
  for (const [vision, m] of Object.entries(CVD)) {
    for (let i = 0; i < colors.length; i++) for (let j = i + 1; j < colors.length; j++) {
      const a = lab(colors[i], m), b = lab(colors[j], m);
      const d = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
      if (d < min.d) min = { d, where: `${colors[i]} vs ${colors[j]} (${vision})` };
    }
  }
  return min;
}
const chart = (v: Record<string, string>) => Array.from({ length: 8 }, (_, i) => v[`--chart-${i + 1}`]);
const OKABE_ITO = ['#56b4e9', '#e69f00', '#009e73', '#f0e442', '#cc79a7', '#d55e00', '#0072b2', '#999999'];
const dark = { ...vars(':root, [data-theme="dark"]') };
const light = { ...dark, ...vars('[data-theme="light"]') };

test('every chart colour has 3:1 against its theme\'s tile and page background', () => {
  const low: string[] = [];
  for (const [name, theme] of [['dark', dark], ['light', light]] as const) {
    const colors = chart(theme);
    assert.is(colors.filter(Boolean).length, 8, `${name}: 8 chart colours`);
    for (const bg of ['--bg-raised', '--bg']) {
      for (const c of colors) {
        const r = contrast(c, theme[bg]);
        if (r < 3) low.push(`${name}: ${c} on ${bg} ${theme[bg]} is ${r.toFixed(2)}:1`);
      }
    }
  }
  assert.equal(low, []);
});

test('the palettes stay distinguishable under colour-vision deficiencies (as far as Okabe–Ito itself)', () => {
  const floor = closest(OKABE_ITO).d;
  assert.ok(floor > 7 && floor < 7.2, `reference floor ${floor}`);
  for (const [name, theme] of [['dark', dark], ['light', light]] as const) {
    const c = closest(chart(theme));
    assert.ok(c.d >= 7, `${name}: ${c.where} ΔE ${c.d.toFixed(1)}`);
  }
});

test('colours fixed in report specs (sql/reports/*.vl.json) have 3:1 in both themes', () => {
  const dir = path.resolve(import.meta.dirname, '../sql/reports');
  const low: string[] = [];
  let seen = 0;
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.vl.json') || x.endsWith('.sql'))) {
    for (const [hex] of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/#[0-9a-f]{6}\b|#[0-9a-f]{3}\b/gi)) {
      seen++;
      for (const [name, theme] of [['dark', dark], ['light', light]] as const) {
        for (const bg of ['--bg-raised', '--bg']) {
          const r = contrast(hex, theme[bg]);
          if (r < 3) low.push(`${f}: ${hex} on ${name} ${bg} is ${r.toFixed(2)}:1`);
        }
      }
    }
  }
  assert.ok(seen > 0, 'no fixed colours found: is the pattern still right?');
  assert.equal(low, []);
});

test('the OS-preference light block repeats the light theme\'s colours', () => {
  const auto = /@media \(prefers-color-scheme: light\)\s*\{\s*:root:not\(\[data-theme\]\)\s*\{([^}]*)\}/.exec(css)![1];
  for (const d of auto.matchAll(/(--[\w-]+)\s*:\s*([^;]+);/g)) assert.is(d[2].trim(), light[d[1]], d[1]);
});

test.run();
