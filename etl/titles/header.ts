// Which column is which. Real copies rename columns ("casts", "genre" for listed_in), change their case, misspell
// one, or add an empty trailing column; some have no header at all. Names are matched exactly (after normalising
// case and punctuation), then by a small edit distance, then — for a column still missing — by its Kaggle position.
// Every match that is not exact is reported.
export const COLUMNS = ['show_id', 'type', 'title', 'director', 'cast', 'country', 'date_added', 'release_year',
  'rating', 'duration', 'listed_in', 'description'] as const;
export type Column = (typeof COLUMNS)[number];

const SYNONYMS: Record<Column, string[]> = {
  show_id: ['show_id', 'showid', 'id', 'show', 'title_id', 'netflix_id'],
  type: ['type', 'kind', 'content_type', 'show_type'],
  title: ['title', 'name', 'show_title', 'title_name'],
  director: ['director', 'directors', 'directed_by'],
  cast: ['cast', 'casts', 'actors', 'cast_members', 'starring', 'stars'],
  country: ['country', 'countries', 'production_country', 'production_countries'],
  date_added: ['date_added', 'dateadded', 'added', 'added_on', 'date_added_to_netflix', 'added_date'],
  release_year: ['release_year', 'releaseyear', 'year', 'released', 'release'],
  rating: ['rating', 'maturity_rating', 'age_rating', 'certificate', 'rated'],
  duration: ['duration', 'length', 'runtime', 'run_time'],
  listed_in: ['listed_in', 'listedin', 'genre', 'genres', 'category', 'categories'],
  description: ['description', 'desc', 'summary', 'plot', 'synopsis', 'overview'],
};

export function normalizeName(s: string): string {
  return s.replace(/^\uFEFF/, '').trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

export interface HeaderMapping {
  /** COLUMNS[k] is read from record field index[k]. */
  index: number[];
  /** Fields per record the header announces. */
  width: number;
  /** Record fields that must be empty when present beyond `width`-less trailing columns (empty-named columns). */
  notes: string[];
  mode: 'names' | 'position' | 'no header';
}

export type HeaderResult = { ok: true; mapping: HeaderMapping } | { ok: false; problem: string };

export function kaggleOrder(width: number, mode: HeaderMapping['mode'], notes: string[] = []): HeaderMapping {
  return { index: COLUMNS.map((_, k) => k), width, notes, mode };
}

export function mapHeader(raw: string[]): HeaderResult {
  const names = raw.map(normalizeName);
  const index = new Array<number>(COLUMNS.length).fill(-1);
  const used = new Array<boolean>(names.length).fill(false);
  const notes: string[] = [];
  const col = (c: Column) => COLUMNS.indexOf(c);

  names.forEach((n, i) => {
    if (!n) return;
    for (const c of COLUMNS) {
      if (index[col(c)] === -1 && SYNONYMS[c].includes(n)) {
        index[col(c)] = i;
        used[i] = true;
        if (n !== c) notes.push(`column "${raw[i].trim()}" read as ${c}`);
        return;
      }
    }
  });
  const byName = index.filter((i) => i >= 0).length;
  // misspellings: "descripton", "relase_year", "date_addded"
  names.forEach((n, i) => {
    if (used[i] || n.length < 4) return;
    let best: { c: Column; d: number } | undefined;
    for (const c of COLUMNS) {
      if (index[col(c)] !== -1) continue;
      const d = Math.min(...SYNONYMS[c].filter((s) => s.length >= 4).map((s) => distance(n, s)));
      if (d <= 2 && (!best || d < best.d)) best = { c, d };
    }
    if (best) {
      index[col(best.c)] = i;
      used[i] = true;
      notes.push(`column "${raw[i].trim()}" read as ${best.c} (closest name)`);
    }
  });
  // a column still missing whose Kaggle position holds an unrecognised name: take it by position, but only when
  // most columns matched by name (otherwise this is some other file, and the position fallback decides)
  if (byName >= 8) {
    COLUMNS.forEach((c, k) => {
      if (index[k] !== -1 || k >= names.length || used[k] || !names[k]) return;
      index[k] = k;
      used[k] = true;
      notes.push(`column "${raw[k].trim()}" read as ${c} (by its position)`);
    });
  }
  const missing = COLUMNS.filter((_, k) => index[k] === -1);
  if (missing.length) {
    return { ok: false, problem: `the header lacks ${missing.join(', ')} (found: ${raw.map((r) => JSON.stringify(r.trim())).join(', ')})` };
  }
  const ignored = names.map((n, i) => (!used[i] && n ? raw[i].trim() : null)).filter((x): x is string => x !== null);
  if (ignored.length) notes.push(`column${ignored.length > 1 ? 's' : ''} ${ignored.map((s) => JSON.stringify(s)).join(', ')} ignored`);
  const emptyNamed = names.filter((n, i) => !n && !used[i]).length;
  if (emptyNamed) notes.push(`${emptyNamed} empty-named column${emptyNamed > 1 ? 's' : ''} ignored`);
  return { ok: true, mapping: { index, width: names.length, notes, mode: 'names' } };
}
