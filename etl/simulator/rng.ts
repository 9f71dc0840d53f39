// Seeded randomness for the simulator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state),
// seeded through splitmix32 from (seed, stream, index), so each customer draws from its own independent stream and
// the data do not depend on batch sizes or on which tables are generated. Never Math.random, never the clock.

export type Rng = () => number; // uniform in [0, 1)

function splitmix32(a: number): () => number {
  return () => {
    a |= 0; a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16); t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15; t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

function sfc32(a: number, b: number, c: number, d: number): Rng {
  return () => {
    a |= 0; b |= 0; c |= 0; d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/** An independent stream for (seed, stream tag, index). */
export function rngFor(seed: number, stream: number, index: number): Rng {
  const mix = splitmix32((seed ^ Math.imul(stream + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) | 0);
  const hi = splitmix32(Math.floor(seed / 4294967296) ^ Math.imul(index, 0x27d4eb2f) ^ stream);
  const r = sfc32(mix(), mix() ^ hi(), mix(), mix() ^ hi());
  for (let i = 0; i < 12; i++) r(); // let the state mix before use
  return r;
}

/** Exponential with the given mean. */
export const expo = (r: Rng, mean: number) => -Math.log(1 - r()) * mean;
/** Standard normal (Box-Muller, one of the pair). */
export const normal = (r: Rng) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

/** Index into `cumulative` (ascending, last = total) for one draw. */
export function pickCumulative(r: Rng, cumulative: ArrayLike<number>): number {
  const x = r() * cumulative[cumulative.length - 1];
  let lo = 0, hi = cumulative.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cumulative[mid] > x) hi = mid; else lo = mid + 1; }
  return lo;
}

export function cumulate(weights: number[]): Float64Array {
  const c = new Float64Array(weights.length);
  let s = 0;
  weights.forEach((w, i) => { s += w; c[i] = s; });
  return c;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** A version-4-shaped UUID from the stream. */
export function uuid(r: Rng): string {
  const b = new Array<number>(16);
  for (let i = 0; i < 16; i += 4) {
    const x = Math.floor(r() * 4294967296);
    b[i] = x & 255; b[i + 1] = (x >>> 8) & 255; b[i + 2] = (x >>> 16) & 255; b[i + 3] = x >>> 24;
  }
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.map((x) => HEX[x]);
  return `${h[0]}${h[1]}${h[2]}${h[3]}-${h[4]}${h[5]}-${h[6]}${h[7]}-${h[8]}${h[9]}-${h[10]}${h[11]}${h[12]}${h[13]}${h[14]}${h[15]}`;
}
