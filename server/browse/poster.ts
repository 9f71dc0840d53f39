// Posters drawn from the data: the dataset has no images, so each title gets an SVG computed from its id, title and
// genres alone — the same inputs give the same bytes (so an ETag of the inputs is exact and browsers may cache it).
// The main genre picks the palette family and the typeface; a hash of the title picks the hue within it, the pattern
// and its placement. The title is real text (<title>, role="img", aria-label), so it reads out and scales.
import { createHash } from 'node:crypto';

/** Bump when the drawing changes: it is part of every poster's ETag. */
export const POSTER_VERSION = 2;

export interface PosterInput { id: number; title: string; type: string; releaseYear: number | null; genres: string[] }

interface Family { hues: [number, number]; sat: number; font: string; weight: number; upper: boolean }

// Hue ranges and type per genre family (first matching genre wins, in the title's own genre order).
const FAMILIES: [RegExp, Family][] = [
  [/horror|thriller/i, { hues: [350, 370], sat: 70, font: 'Georgia, "Times New Roman", serif', weight: 700, upper: true }],
  [/comed|stand-up/i, { hues: [35, 55], sat: 85, font: '"Trebuchet MS", Verdana, sans-serif', weight: 800, upper: false }],
  [/kids|children|family/i, { hues: [80, 200], sat: 75, font: '"Trebuchet MS", Verdana, sans-serif', weight: 800, upper: false }],
  [/docu|science|nature/i, { hues: [165, 195], sat: 45, font: '"Courier New", monospace', weight: 700, upper: true }],
  [/romant/i, { hues: [320, 345], sat: 65, font: 'Georgia, "Times New Roman", serif', weight: 400, upper: false }],
  [/action|adventure|crime/i, { hues: [15, 30], sat: 80, font: 'Impact, "Arial Narrow", sans-serif', weight: 700, upper: true }],
  [/sci-fi|fantasy/i, { hues: [190, 230], sat: 70, font: '"Courier New", monospace', weight: 700, upper: true }],
  [/anime/i, { hues: [275, 300], sat: 70, font: 'Verdana, sans-serif', weight: 700, upper: false }],
  [/music/i, { hues: [290, 320], sat: 75, font: 'Verdana, sans-serif', weight: 700, upper: true }],
  [/drama|independent|classic/i, { hues: [240, 270], sat: 45, font: 'Georgia, "Times New Roman", serif', weight: 400, upper: false }],
];
const DEFAULT_FAMILY: Family = { hues: [200, 250], sat: 40, font: 'system-ui, Helvetica, Arial, sans-serif', weight: 700, upper: false };

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A deterministic stream of numbers in [0, 1) from the title (FNV-1a seeded xorshift: no Math.random). */
function random(seed: string) {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) { h ^= seed.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  let x = h || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

/** Breaks the title into at most 4 lines of about `width` characters (a long last word is cut with an ellipsis). */
function lines(title: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of title.split(/\s+/).filter(Boolean)) {
    if (line && (line + ' ' + word).length > width) { out.push(line); line = word; } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  if (out.length > 4) { out.length = 4; out[3] = out[3].replace(/.{0,2}$/, '…'); }
  return out.map((l) => (l.length > width + 3 ? l.slice(0, width + 2) + '…' : l));
}

/** Whether a line surely fits the poster's width at this size (else it is squeezed to fit with textLength). A wide
 *  face (Impact, serif capitals, monospace) takes about 0.62 em a character, the others about 0.55. */
function fits(line: string, size: number, family: Family): boolean {
  const em = family.upper || /Courier|Impact/.test(family.font) ? 0.68 : 0.55;
  return [...line].length * size * em <= 200 - 28;
}

export function posterEtag(input: PosterInput): string {
  const h = createHash('sha256').update(JSON.stringify([POSTER_VERSION, input.id, input.title, input.type, input.releaseYear, input.genres]));
  return `"p${POSTER_VERSION}-${h.digest('base64url').slice(0, 22)}"`;
}

export function posterSvg(input: PosterInput): string {
  const rnd = random(`${input.id}:${input.title}`);
  const family = FAMILIES.find(([re]) => input.genres.some((g) => re.test(g)))?.[1] ?? DEFAULT_FAMILY;
  const hue = Math.round(family.hues[0] + rnd() * (family.hues[1] - family.hues[0])) % 360;
  const hue2 = (hue + 25 + Math.round(rnd() * 40)) % 360;
  const dark = `hsl(${hue} ${family.sat}% 12%)`;
  const mid = `hsl(${hue} ${family.sat}% 30%)`;
  const light = `hsl(${hue2} ${family.sat}% 58%)`;
  const W = 200, H = 300;
  const pattern = Math.floor(rnd() * 4);
  const shapes: string[] = [];
  if (pattern === 0) { // concentric rings off-centre
    const cx = Math.round(40 + rnd() * 120), cy = Math.round(40 + rnd() * 120);
    for (let r = 150; r > 10; r -= 24) shapes.push(`<circle cx="${cx}" cy="${cy}" r="${r}" fill="none" stroke="${light}" stroke-opacity="0.18" stroke-width="10"/>`);
  } else if (pattern === 1) { // diagonal bands
    const step = 26 + Math.round(rnd() * 20);
    for (let x = -H; x < W; x += step) shapes.push(`<path d="M${x} ${H} L${x + H} 0" stroke="${light}" stroke-opacity="0.16" stroke-width="${Math.round(step / 3)}"/>`);
  } else if (pattern === 2) { // a big disc, like a moon or a spotlight
    const cx = Math.round(30 + rnd() * 140), cy = Math.round(50 + rnd() * 80), r = Math.round(50 + rnd() * 40);
    shapes.push(`<circle cx="${cx}" cy="${cy}" r="${r}" fill="${light}" fill-opacity="0.55"/>`);
    shapes.push(`<circle cx="${cx}" cy="${cy}" r="${r + 18}" fill="none" stroke="${light}" stroke-opacity="0.25" stroke-width="4"/>`);
  } else { // horizon stripes
    for (let i = 0; i < 6; i++) {
      const y = Math.round(60 + i * 22 + rnd() * 8);
      shapes.push(`<rect x="0" y="${y}" width="${W}" height="${Math.round(4 + rnd() * 10)}" fill="${light}" fill-opacity="${(0.12 + i * 0.05).toFixed(2)}"/>`);
    }
  }
  const text = family.upper ? input.title.toUpperCase() : input.title;
  const width = family.upper ? 12 : 14;
  const ls = lines(text, width);
  const size = ls.some((l) => l.length > 10) ? 20 : 26;
  const top = H - 40 - (ls.length - 1) * (size + 4);
  const label = `${input.title}${input.releaseYear ? ` (${input.releaseYear})` : ''}`;
  const kind = input.type === 'TV Show' ? 'SERIES' : 'FILM';
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(label)}">
<title>${esc(label)}</title>
<defs><linearGradient id="g" x1="0" y1="0" x2="0.4" y2="1"><stop offset="0" stop-color="${mid}"/><stop offset="1" stop-color="${dark}"/></linearGradient>
<linearGradient id="s" x1="0" y1="0" x2="0" y2="1"><stop offset="0.45" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="0.85"/></linearGradient></defs>
<rect width="${W}" height="${H}" fill="url(#g)"/>
${shapes.join('\n')}
<rect width="${W}" height="${H}" fill="url(#s)"/>
<text x="14" y="26" fill="#e50914" font-family="system-ui, Helvetica, Arial, sans-serif" font-size="13" font-weight="800" letter-spacing="2">M</text>
<text x="30" y="26" fill="#ffffff" fill-opacity="0.75" font-family="system-ui, Helvetica, Arial, sans-serif" font-size="9" letter-spacing="2">${kind}</text>
<text x="14" y="${top}" fill="#ffffff" font-family='${family.font}' font-weight="${family.weight}" font-size="${size}">${ls.map((l, i) => `<tspan x="14" dy="${i ? size + 4 : 0}"${fits(l, size, family) ? '' : ` textLength="${W - 28}" lengthAdjust="spacingAndGlyphs"`}>${esc(l)}</tspan>`).join('')}</text>
</svg>`;
}
