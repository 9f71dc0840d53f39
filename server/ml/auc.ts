// Evaluation of a binary scorer: ROC AUC, PR-AUC (average precision) and a calibration table. Pure functions over
// (score, label) pairs; a higher score means "more likely positive".

/** ROC AUC: the probability that a random positive scores above a random negative (ties count one half).
 *  NaN when there is no positive or no negative. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number {
  const order = sortedIndex(scores);
  let pos = 0, neg = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) pos++; else neg++;
  if (!pos || !neg) return NaN;
  // rank-sum (Mann-Whitney U) with average ranks for ties
  let rankSumPos = 0;
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (labels[order[k]]) rankSumPos += avgRank;
    i = j + 1;
  }
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** PR-AUC as average precision: the mean, over positives, of the precision at the threshold that first includes
 *  each one (tied scores enter together). NaN when there is no positive. */
export function prAuc(scores: ArrayLike<number>, labels: ArrayLike<number | boolean>): number {
  const order = sortedIndex(scores).reverse();
  let pos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) pos++;
  if (!pos) return NaN;
  let tp = 0, seen = 0, ap = 0;
  for (let i = 0; i < order.length;) {
    let j = i, tpGroup = 0;
    while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
    for (let k = i; k <= j; k++) if (labels[order[k]]) tpGroup++;
    tp += tpGroup; seen += j - i + 1;
    ap += tpGroup * (tp / seen);
    i = j + 1;
  }
  return ap / pos;
}

export interface CalibrationBin { bin: number; n: number; predicted: number; observed: number }

/** Calibration table: `bins` bins of equal count by predicted probability (lowest first), each with the mean
 *  predicted probability and the observed share of positives. Empty bins are left out. */
export function calibration(probs: ArrayLike<number>, labels: ArrayLike<number | boolean>, bins = 10): CalibrationBin[] {
  const order = sortedIndex(probs);
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const from = Math.floor((b * order.length) / bins), to = Math.floor(((b + 1) * order.length) / bins);
    if (to <= from) continue;
    let p = 0, y = 0;
    for (let k = from; k < to; k++) { p += probs[order[k]]; if (labels[order[k]]) y++; }
    out.push({ bin: b + 1, n: to - from, predicted: p / (to - from), observed: y / (to - from) });
  }
  return out;
}

/** Indexes sorted by ascending score (stable). */
function sortedIndex(scores: ArrayLike<number>): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  return idx.sort((a, b) => scores[a] - scores[b] || a - b);
}
