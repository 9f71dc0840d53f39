// date_added in the shapes real copies use. Three shapes name the month or put the year first and so read one way
// only; "9/25/2021" does not (is 5/9/2021 May 9 or September 5?), so its day/month order is decided for the whole
// file from the dates that only read one way — never per row, and never silently (the summary says how it was read).
export type DateShape = 'Month D, YYYY' | 'D-Mon-YY' | 'YYYY-MM-DD' | 'M/D/YYYY or D/M/YYYY';
export type DateOrder = 'mdy' | 'dmy';

const MONTHS: Record<string, number> = {};
['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december']
  .forEach((m, i) => { MONTHS[m] = i + 1; MONTHS[m.slice(0, 3)] = i + 1; });
MONTHS.sept = 9;

function year(y: string): number {
  if (y.length === 4) return Number(y);
  const n = Number(y);
  return n < 70 ? 2000 + n : 1900 + n;
}

function iso(y: number, m: number, d: number): string | null {
  if (y < 1900 || y > 2100 || m < 1 || m > 12 || d < 1) return null;
  const days = m === 2 ? ((y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;
  if (d > days) return null;
  return `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

export type ParsedDate =
  | { shape: Exclude<DateShape, 'M/D/YYYY or D/M/YYYY'>; iso: string }
  | { shape: 'M/D/YYYY or D/M/YYYY'; mdy: string | null; dmy: string | null };

const LONG = /^([A-Za-z]+)\.? +(\d{1,2}),? +(\d{4})$/;
const DMON = /^(\d{1,2})[- ]([A-Za-z]{3,9})[- ](\d{2}|\d{4})$/;
const ISO = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]00:00(?::00)?)?$/;
const SLASH = /^(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})$/;

/** null: not a date in any known shape, or no such calendar day. `s` is already trimmed. (The CSV stage parses each
 * distinct raw value once: csv.ts ByBytes.) */
export function parseDateAdded(s: string): ParsedDate | null {
  let m = LONG.exec(s);
  if (m) {
    const mon = MONTHS[m[1].toLowerCase()];
    const v = mon ? iso(Number(m[3]), mon, Number(m[2])) : null;
    return v ? { shape: 'Month D, YYYY', iso: v } : null;
  }
  if ((m = DMON.exec(s))) {
    const mon = MONTHS[m[2].toLowerCase()];
    const v = mon ? iso(year(m[3]), mon, Number(m[1])) : null;
    return v ? { shape: 'D-Mon-YY', iso: v } : null;
  }
  if ((m = ISO.exec(s))) {
    const v = iso(Number(m[1]), Number(m[2]), Number(m[3]));
    return v ? { shape: 'YYYY-MM-DD', iso: v } : null;
  }
  if ((m = SLASH.exec(s))) {
    const a = Number(m[1]), b = Number(m[2]), y = year(m[3]);
    const mdy = iso(y, a, b), dmy = iso(y, b, a);
    return mdy || dmy ? { shape: 'M/D/YYYY or D/M/YYYY', mdy, dmy } : null;
  }
  return null;
}

export function parseDateOrder(v: string): DateOrder {
  const s = v.trim().toLowerCase().replace(/[^a-z]/g, '');
  if (s === 'mdy' || s === 'md') return 'mdy';
  if (s === 'dmy' || s === 'dm') return 'dmy';
  throw new Error(`unknown date order "${v}": use mdy (9/25/2021) or dmy (25/9/2021)`);
}
