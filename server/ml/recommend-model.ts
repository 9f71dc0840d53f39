// The recommender's arithmetic, without the database (README "Recommendations and churn prediction (server/ml)"):
// item-item nearest neighbours by cosine over sparse vectors — used twice, for content (a title's TF-IDF features,
// computed in SQL) and for co-watch (a title's viewers) — their blend, and a user's ranking from their history.

/** Items 0..n-1, each a sparse vector: feature indices and weights. */
export interface SparseItems { features: Int32Array[]; weights: Float64Array[] }

export interface Neighbour { item: number; score: number }

/**
 * For every item, its `top` most similar other items by dot product of the vectors (a cosine when they are
 * L2-normalized), found through an inverted index: only items sharing a feature are ever compared.
 * `shrink` > 0 multiplies each score by c / (c + shrink), c = the number of shared features (co-viewers), so a
 * similarity resting on two viewers counts less than one resting on fifty.
 */
export function nearestNeighbours(items: SparseItems, top: number, shrink = 0): Neighbour[][] {
  const n = items.features.length;
  let nf = 0;
  for (const f of items.features) for (let k = 0; k < f.length; k++) if (f[k] + 1 > nf) nf = f[k] + 1;
  // postings: feature -> items holding it, with their weight (CSR layout)
  const start = new Int32Array(nf + 1);
  for (const f of items.features) for (let k = 0; k < f.length; k++) start[f[k] + 1]++;
  for (let k = 0; k < nf; k++) start[k + 1] += start[k];
  const fill = start.slice(0, nf);
  const postItem = new Int32Array(start[nf]), postW = new Float64Array(start[nf]);
  for (let i = 0; i < n; i++) {
    const f = items.features[i], w = items.weights[i];
    for (let k = 0; k < f.length; k++) { const p = fill[f[k]]++; postItem[p] = i; postW[p] = w[k]; }
  }
  const acc = new Float64Array(n), count = new Int32Array(n), touched = new Int32Array(n);
  const out: Neighbour[][] = new Array(n);
  for (let i = 0; i < n; i++) {
    let nt = 0;
    const f = items.features[i], w = items.weights[i];
    for (let k = 0; k < f.length; k++) {
      const wi = w[k];
      for (let p = start[f[k]], e = start[f[k] + 1]; p < e; p++) {
        const j = postItem[p];
        if (j === i) continue;
        if (count[j] === 0) touched[nt++] = j;
        acc[j] += wi * postW[p];
        count[j]++;
      }
    }
    const best = new TopK(top);
    for (let t = 0; t < nt; t++) {
      const j = touched[t];
      const s = shrink > 0 ? acc[j] * (count[j] / (count[j] + shrink)) : acc[j];
      if (s > 0) best.offer(j, s);
      acc[j] = 0; count[j] = 0;
    }
    out[i] = best.sorted();
  }
  return out;
}

/** The k largest (item, score) offered; ties go to the smaller item, so results never depend on the offer order. */
export class TopK {
  private items: number[] = [];
  private scores: number[] = [];
  constructor(private readonly k: number) {}
  private less(a: number, b: number) { // is entry a worse than entry b?
    return this.scores[a] < this.scores[b] || (this.scores[a] === this.scores[b] && this.items[a] > this.items[b]);
  }
  offer(item: number, score: number) {
    if (this.k <= 0) return;
    const h = this.items.length;
    if (h < this.k) {
      this.items.push(item); this.scores.push(score);
      let c = h;
      while (c > 0) { const p = (c - 1) >> 1; if (!this.less(c, p)) break; this.swap(c, p); c = p; }
      return;
    }
    if (score < this.scores[0] || (score === this.scores[0] && item > this.items[0])) return;
    this.items[0] = item; this.scores[0] = score;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1, r = l + 1;
      let m = c;
      if (l < h && this.less(l, m)) m = l;
      if (r < h && this.less(r, m)) m = r;
      if (m === c) break;
      this.swap(c, m); c = m;
    }
  }
  private swap(a: number, b: number) {
    [this.items[a], this.items[b]] = [this.items[b], this.items[a]];
    [this.scores[a], this.scores[b]] = [this.scores[b], this.scores[a]];
  }
  sorted(): Neighbour[] {
    return this.items.map((item, i) => ({ item, score: this.scores[i] }))
      .sort((a, b) => b.score - a.score || a.item - b.item);
  }
}

export interface Similar { item: number; score: number; content: number; cowatch: number }

/**
 * Blends each item's content and co-watch neighbours: score = contentWeight · content / C + (1 − contentWeight) ·
 * cowatch / W, where C and W are the mean best score of each kind over the items that have one (the two cosines live
 * on different scales). Items without viewers keep their content neighbours; the `top` best are kept.
 */
export function blendNeighbours(content: Neighbour[][], cowatch: Neighbour[][], contentWeight: number, top: number): Similar[][] {
  const meanBest = (lists: Neighbour[][]) => {
    let s = 0, n = 0;
    for (const l of lists) if (l.length) { s += l[0].score; n++; }
    return n ? s / n : 1;
  };
  const c = meanBest(content), w = meanBest(cowatch);
  return content.map((cl, i) => {
    const by = new Map<number, Similar>();
    for (const x of cl) by.set(x.item, { item: x.item, score: 0, content: x.score, cowatch: 0 });
    for (const x of cowatch[i] ?? []) {
      const s = by.get(x.item) ?? { item: x.item, score: 0, content: 0, cowatch: 0 };
      s.cowatch = x.score;
      by.set(x.item, s);
    }
    for (const s of by.values()) s.score = contentWeight * s.content / c + (1 - contentWeight) * s.cowatch / w;
    return [...by.values()].sort((a, b) => b.score - a.score || a.item - b.item).slice(0, top);
  });
}

/** A title in a user's history, most recent first; `weight` says how much it speaks for the user's taste. */
export interface HistoryItem { title: number; weight: number }

export interface Pick { title: number; score: number; because: number }

/**
 * A user's ranking: each candidate scores the sum, over the history, of the history title's weight × their
 * similarity; titles in `exclude` (already watched) never appear. `because` is the history title that contributed
 * most. Ties go to the more popular title (`popularity` rank: lower is more popular), then the smaller id.
 */
export function rankForUser(history: readonly HistoryItem[], similar: (title: number) => readonly { item: number; score: number }[],
  exclude: ReadonlySet<number>, k: number, popularityRank?: (title: number) => number): Pick[] {
  const score = new Map<number, { score: number; because: number; best: number }>();
  for (const h of history) {
    for (const s of similar(h.title)) {
      if (exclude.has(s.item)) continue;
      const add = h.weight * s.score;
      const cur = score.get(s.item);
      if (!cur) score.set(s.item, { score: add, because: h.title, best: add });
      else { cur.score += add; if (add > cur.best) { cur.best = add; cur.because = h.title; } }
    }
  }
  const pop = popularityRank ?? (() => 0);
  return [...score.entries()]
    .map(([title, v]) => ({ title, score: v.score, because: v.because }))
    .sort((a, b) => b.score - a.score || pop(a.title) - pop(b.title) || a.title - b.title)
    .slice(0, k);
}

/** How much the i-th most recent distinct title of a history weighs (recent taste counts more). */
export const recencyWeight = (i: number) => Math.pow(0.9, i);
/** Distinct titles of a history used to rank for a user. */
export const HISTORY_DEPTH = 20;
