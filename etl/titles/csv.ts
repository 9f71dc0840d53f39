// UTF-8 CSV in, COPY rows for the staging table out — one pass, bounded memory. A byte-level RFC 4180 scanner finds
// records and fields (quoted fields are skipped with indexOf, so long cast lists and descriptions cost little); the
// header is mapped; each record is validated and its defects fixed and counted; then the record is written out as a
// binary COPY tuple: text fields as slices of their own bytes (PostgreSQL then parses nothing: half its time on the
// staging COPY went to reading CSV), the parsed columns (type, date, year, rating, duration — each distinct raw value
// parsed once, see ByBytes) in their binary forms. The list columns go to a ListSink that splits them and interns their
// names (links-worker.ts: on a worker thread for big inputs); the text columns are trimmed later in set-based SQL, and
// only counted here.
import { Transform, type TransformCallback } from 'node:stream';
import { InputProblem } from './errors.ts';
import { COLUMNS, mapHeader, kaggleOrder, type HeaderMapping, type Column } from './header.ts';
import { parseDateAdded, type DateOrder, type DateShape, type ParsedDate } from './dates.ts';
import { hashBytes, NameIds, type ListSink } from './links.ts';
import { BinaryCopy } from '../../server/db/copy-binary.ts';

const QUOTE = 0x22, COMMA = 0x2c, LF = 0x0a, CR = 0x0d, SPACE = 0x20, TAB = 0x09;
const MAX_RECORD_BYTES = 1 << 20;
const MAX_FIELDS = 512;

/** Staging columns, in the order the rows are written. */
export const STAGING_COLUMNS = ['line', 'show_id', 'type', 'title', 'director', 'cast_names', 'country', 'date_added',
  'date_mdy', 'date_dmy', 'release_year', 'rating', 'duration_minutes', 'seasons', 'listed_in', 'description'] as const;

export type DefectKind =
  | 'bom' | 'windows_1252_lines' | 'crlf_line_ends' | 'blank_lines' | 'stray_quotes' | 'extra_empty_columns'
  | 'whitespace_trimmed' | 'list_empty_items' | 'rating_holds_duration' | 'type_spelling' | 'duration_spelling';

export interface Reject { line: number; showId: string | null; reason: string; record: string }

export interface CsvStats {
  records: number;
  rows: number;
  header: HeaderMapping | null;
  defects: Partial<Record<DefectKind, number>>;
  missing: Partial<Record<Column, number>>;
  dateShapes: Partial<Record<DateShape, number>>;
  /** Set at the end: how slash dates were read, and why. */
  dateOrder: { order: DateOrder; reason: string } | null;
  rejects: Reject[];
  /** Lines already staged whose date only reads in the order the file did not use; the loader drops them. */
  lateRejectLines: number[];
  lineEnds: { lf: number; crlf: number };
}

export interface CsvOptions {
  file: string;
  dateOrder?: DateOrder;
  maxRejects: number;
  /** Where each row's list fields go (links-worker.ts). */
  lists?: ListSink;
}

const LIST_COLUMNS: Column[] = ['director', 'cast', 'country', 'listed_in'];
const TEXT_COLUMNS: Column[] = ['show_id', 'title', 'director', 'cast', 'country', 'listed_in', 'description'];
const TEXT_INDEX = TEXT_COLUMNS.map((c) => COLUMNS.indexOf(c));
/** Each text column's place among the lists (LINK_KINDS order: director, cast, country, listed_in), or -1. */
const LIST_AT = TEXT_COLUMNS.map((c) => LIST_COLUMNS.indexOf(c));

/**
 * Parsed values of a column by the field's raw bytes. type, date_added, release_year, rating and duration take a few
 * hundred distinct values over any number of rows, so each is decoded, trimmed and parsed once, not per row (that was
 * a third of the CSV stage's time). Past MAX_CACHED distinct values a column is parsed per row.
 */
class ByBytes<T> {
  private readonly ids = new NameIds();
  private readonly values: T[] = [];
  constructor(readonly parse: (raw: string) => T) {}
  get(buf: Buffer, s: number, e: number): T {
    if (this.ids.count >= MAX_CACHED) return this.parse(buf.toString('utf8', s, e));
    const known = this.ids.count;
    const id = this.ids.id(buf, s, e, hashBytes(buf, s, e));
    if (id > known) this.values[id] = this.parse(buf.toString('utf8', s, e));
    return this.values[id];
  }
}
const MAX_CACHED = 50_000;

interface TypeValue { raw: string; t: string; type: 'Movie' | 'TV Show' | null; spelling: boolean }
function parseType(raw: string): TypeValue {
  const t = raw.trim();
  if (t === 'Movie' || t === 'TV Show') return { raw, t, type: t, spelling: false };
  if (/^movie$/i.test(t)) return { raw, t, type: 'Movie', spelling: true };
  if (/^tv[ _-]?show$/i.test(t)) return { raw, t, type: 'TV Show', spelling: true };
  return { raw, t, type: null, spelling: false };
}

/** Days since 2000-01-01 (binary COPY's date) of a YYYY-MM-DD date; null for null. */
function days(iso: string | null): number | null {
  return iso === null ? null : Date.UTC(Number(iso.slice(0, 4)), Number(iso.slice(5, 7)) - 1, Number(iso.slice(8, 10))) / 86_400_000 - 10_957;
}

/** A date_added value: its shape, and as days (a slash date both ways). */
interface DateValue { raw: string; t: string; parsed: ParsedDate | null; iso: number | null; mdy: number | null; dmy: number | null }
function parseDate(raw: string): DateValue {
  const t = raw.trim();
  const parsed = t ? parseDateAdded(t) : null;
  if (parsed?.shape === 'M/D/YYYY or D/M/YYYY') return { raw, t, parsed, iso: null, mdy: days(parsed.mdy), dmy: days(parsed.dmy) };
  return { raw, t, parsed, iso: parsed ? days(parsed.iso) : null, mdy: null, dmy: null };
}

interface YearValue { t: string; ok: boolean; year: number | null }
function parseYear(raw: string): YearValue {
  const t = raw.trim();
  return { t, ok: !t || (/^\d{4}$/.test(t) && Number(t) >= 1900 && Number(t) <= 2100), year: t ? Number(t) : null };
}

/** A rating, and whether it is really a duration (the real file's three rows where the duration slid into rating). */
interface RatingValue { t: string; isDuration: boolean }
function parseRating(raw: string): RatingValue {
  const t = raw.trim();
  return { t, isDuration: /^\d+\s*(min|mins|minutes?|seasons?)$/i.test(t) };
}

/** "90 min" / "2 Seasons": the number and its unit, or ok false. spelling: not the dataset's own spelling. */
interface DurationValue { t: string; ok: boolean; n: number; isMin: boolean; spelling: boolean }
function parseDuration(raw: string): DurationValue {
  const t = raw.trim();
  const dm = /^(\d+)\s*([A-Za-z]+)\.?$/.exec(t);
  const unit = dm?.[2].toLowerCase() ?? '';
  const n = dm ? Number(dm[1]) : 0;
  const isMin = ['min', 'mins', 'minute', 'minutes'].includes(unit);
  const isSeason = ['season', 'seasons'].includes(unit);
  const ok = !!dm && n > 0 && n <= 100_000 && (isMin || isSeason);
  const spelling = !(unit === 'min' || (unit === 'season' && n === 1) || (unit === 'seasons' && n !== 1));
  return { t, ok, n, isMin, spelling };
}

function isBlank(b: number) { return b === SPACE || b === TAB; }

export class TitlesCsvStream extends Transform {
  readonly stats: CsvStats;
  private readonly opts: CsvOptions;
  private carry: Buffer | null = null;
  private line = 1; // physical line where the next record starts
  // start, end, kind per field: 0 plain, 2 plain with stray quotes; odd: quoted (1; 3 with "" escapes inside)
  private readonly f = new Int32Array(MAX_FIELDS * 3);
  private nf = 0;
  private recLines = 0; // line breaks inside the record's quoted fields
  private crlf = false;
  private pendingHeader: { fields: string[]; line: number; problem: string } | null = null;
  private cols: number[] = [];
  private readonly out = new BinaryCopy();
  private readonly listRanges = new Int32Array(2 * LIST_COLUMNS.length);
  private readonly types = new ByBytes(parseType);
  private readonly dates = new ByBytes(parseDate);
  private readonly years = new ByBytes(parseYear);
  private readonly ratings = new ByBytes(parseRating);
  private readonly durations = new ByBytes(parseDuration);
  // Slash dates that read one way only: counted, and kept (as rejects-to-be) under the order they contradict.
  private slash = { contradictDmy: [] as Reject[], contradictMdy: [] as Reject[], mdyOnlyCount: 0, dmyOnlyCount: 0, any: false };

  constructor(opts: CsvOptions) {
    super({ highWaterMark: 1 << 16 });
    this.opts = opts;
    this.stats = { records: 0, rows: 0, header: null, defects: {}, missing: {}, dateShapes: {}, dateOrder: null,
      rejects: [], lateRejectLines: [], lineEnds: { lf: 0, crlf: 0 } };
  }

  private defect(kind: DefectKind, n = 1) { this.stats.defects[kind] = (this.stats.defects[kind] ?? 0) + n; }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    try {
      const buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
      this.carry = null;
      const used = this.scanAll(buf, false);
      if (used < buf.length) {
        if (buf.length - used > MAX_RECORD_BYTES) {
          throw new InputProblem('a record longer than 1 MB starts here: is a quote left unclosed?', this.line);
        }
        this.carry = buf.subarray(used);
      }
      for (const b of this.out.take()) this.push(b);
      if (this.opts.lists) this.opts.lists.batch(buf, used, cb); else cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback) {
    try {
      const last = this.carry ?? Buffer.alloc(0);
      if (last.length) this.scanAll(last, true);
      this.carry = null;
      if (this.pendingHeader) this.failHeader();
      if (!this.stats.header) throw new InputProblem(this.stats.records ? 'only blank lines: no header and no data' : 'the file is empty');
      if (this.stats.rows === 0 && this.stats.rejects.length === 0) throw new InputProblem('the file has a header but no data rows');
      this.decideDateOrder();
      for (const b of this.out.finish()) this.push(b);
      if (this.opts.lists) this.opts.lists.batch(last, last.length, cb); else cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  /** Scans whole records from buf; returns how many bytes were consumed. */
  private scanAll(buf: Buffer, final: boolean): number {
    let pos = 0;
    while (pos < buf.length) {
      const next = this.scanRecord(buf, pos, final);
      if (next < 0) break;
      // a record that arrived whole in one chunk (or completed within the chunk that took it past the cap) is held
      // to the same 1 MB cap as one still being carried across chunks (_transform)
      if (next - pos > MAX_RECORD_BYTES) throw new InputProblem('a record longer than 1 MB starts here: is a quote left unclosed?', this.line);
      this.record(buf, pos, next);
      this.line += 1 + this.recLines;
      pos = next;
    }
    return pos;
  }

  private addField(s: number, e: number, kind: number) {
    if (this.nf >= MAX_FIELDS) throw new InputProblem(`more than ${MAX_FIELDS} columns in one record: this is not the titles dataset`, this.line);
    const k = this.nf++ * 3;
    this.f[k] = s; this.f[k + 1] = e; this.f[k + 2] = kind;
  }

  private newlines(buf: Buffer, s: number, e: number): number {
    let n = 0;
    for (let i = buf.indexOf(LF, s); i !== -1 && i < e; i = buf.indexOf(LF, i + 1)) n++;
    return n;
  }

  /** Finds the record starting at pos. Returns the offset after its line end, or -1 when more bytes are needed. */
  private scanRecord(buf: Buffer, pos: number, final: boolean): number {
    const len = buf.length;
    this.nf = 0;
    this.recLines = 0;
    this.crlf = false;
    let i = pos;
    for (;;) {
      if (i >= len) {
        if (!final) return -1;
        this.addField(i, i, 0);
        return len;
      }
      if (buf[i] === QUOTE) {
        let j = i + 1;
        let close = -1;
        let kind = 1;
        for (;;) {
          const q = buf.indexOf(QUOTE, j);
          if (q === -1) {
            if (!final) return -1;
            throw new InputProblem('a quote opened here is never closed (unterminated quoted field)', this.line + this.recLines);
          }
          if (q + 1 >= len && !final) return -1; // cannot tell a closing quote from an escaped "" yet
          if (buf[q + 1] === QUOTE) { j = q + 2; kind = 3; continue; }
          close = q;
          break;
        }
        const opened = this.line + this.recLines;
        this.recLines += this.newlines(buf, i, close);
        this.addField(i, close + 1, kind);
        i = close + 1;
        if (i >= len) { if (!final) return -1; return len; }
        const c = buf[i];
        if (c === COMMA) { i++; continue; }
        if (c === LF) return i + 1;
        if (c === CR) {
          if (i + 1 >= len && !final) return -1;
          this.crlf = true;
          return buf[i + 1] === LF ? i + 2 : i + 1;
        }
        throw new InputProblem(`unbalanced quotes: text follows the closing quote of a field (is a quote left unclosed? a quote inside a quoted field must be doubled "")` +
          (this.line + this.recLines !== opened ? `; the field was opened at line ${opened}` : ''), this.line + this.recLines);
      }
      let j = i;
      let kind = 0;
      while (j < len) {
        const c = buf[j];
        if (c <= COMMA) { // one comparison for the usual letters and digits
          if (c === COMMA || c === LF || c === CR) break;
          if (c === QUOTE) kind = 2;
        }
        j++;
      }
      if (j >= len) {
        if (!final) return -1;
        this.addField(i, j, kind);
        return len;
      }
      this.addField(i, j, kind);
      const c = buf[j];
      if (c === COMMA) { i = j + 1; continue; }
      if (c === LF) return j + 1;
      if (j + 1 >= len && !final) return -1;
      this.crlf = true;
      return buf[j + 1] === LF ? j + 2 : j + 1;
    }
  }

  // ── field access ────────────────────────────────────────────────────────────────────────────────────────────
  private value(buf: Buffer, k: number): string {
    const o = k * 3;
    const s = this.f[o], e = this.f[o + 1];
    if (this.f[o + 2] & 1) {
      const v = buf.toString('utf8', s + 1, e - 1);
      return this.f[o + 2] === 3 ? v.replace(/""/g, '"') : v;
    }
    return buf.toString('utf8', s, e);
  }

  /** Content range of field k (inside the quotes) and whether it is blank. */
  private inner(k: number): [number, number] {
    const o = k * 3;
    return this.f[o + 2] & 1 ? [this.f[o] + 1, this.f[o + 1] - 1] : [this.f[o], this.f[o + 1]];
  }

  /** Field k parsed through its column's cache; a quoted field with "" escapes (its bytes are not its value) bypasses it. */
  private cached<T>(cache: ByBytes<T>, buf: Buffer, k: number): T {
    const o = k * 3;
    if (this.f[o + 2] === 3) return cache.parse(this.value(buf, k));
    const q = this.f[o + 2] & 1; // inside the quotes of a quoted field; a stray quote in a plain one is its value
    return cache.get(buf, this.f[o] + q, this.f[o + 1] - q);
  }

  /** Whether show_id is 1..64 printable ASCII bytes with no space or quote: then it needs no trimming or decoding. */
  private plainShowId(buf: Buffer, k: number): boolean {
    const o = k * 3;
    if (this.f[o + 2] !== 0) return false;
    const s = this.f[o], e = this.f[o + 1];
    if (e <= s || e - s > 64) return false;
    for (let i = s; i < e; i++) if (buf[i] <= SPACE || buf[i] >= 0x7f || buf[i] === QUOTE) return false;
    return true;
  }

  private blank(buf: Buffer, k: number): boolean {
    const [s, e] = this.inner(k);
    for (let i = s; i < e; i++) {
      const b = buf[i];
      if (b === 0xc2 && buf[i + 1] === 0xa0 && i + 1 < e) { i++; continue; } // no-break space
      if (!isBlank(b) && b !== LF && b !== CR) return false;
    }
    return true;
  }

  private recordText(buf: Buffer, start: number, end: number): string {
    let e = end;
    while (e > start && (buf[e - 1] === LF || buf[e - 1] === CR)) e--;
    return buf.toString('utf8', start, e);
  }

  // ── records ─────────────────────────────────────────────────────────────────────────────────────────────────
  private record(buf: Buffer, start: number, end: number) {
    this.stats.records++;
    if (this.nf === 1 && this.blank(buf, 0) && !(this.f[2] & 1)) {
      if (this.stats.header || this.pendingHeader) this.defect('blank_lines');
      return;
    }
    if (this.crlf) this.stats.lineEnds.crlf++; else this.stats.lineEnds.lf++;
    if (!this.stats.header) {
      this.header(buf, start, end);
      return;
    }
    this.row(buf, start, end);
  }

  private looksLikeKaggleRow(buf: Buffer): boolean {
    if (this.nf < 12) return false;
    const type = this.value(buf, 1).trim().toLowerCase();
    const year = this.value(buf, 7).trim();
    return (type === 'movie' || type === 'tv show') && /^(\d{4})?$/.test(year);
  }

  private header(buf: Buffer, start: number, end: number) {
    if (this.pendingHeader) {
      // the header did not map; the file may still be the dataset in Kaggle order
      const ph = this.pendingHeader;
      if (!this.looksLikeKaggleRow(buf)) this.failHeader();
      this.pendingHeader = null;
      this.useMapping(kaggleOrder(ph.fields.length, 'position', [
        `header at line ${ph.line} not recognised (${ph.problem}); the rows have the dataset's 12 columns in the Kaggle order, so they were loaded by position`]));
      this.row(buf, start, end);
      return;
    }
    if (this.looksLikeKaggleRow(buf)) {
      this.useMapping(kaggleOrder(this.nf, 'no header', [`no header line: line ${this.line} is already a title, columns read in the Kaggle order`]));
      this.row(buf, start, end);
      return;
    }
    const fields = Array.from({ length: this.nf }, (_, k) => this.value(buf, k));
    const r = mapHeader(fields);
    if (r.ok) { this.useMapping(r.mapping); return; }
    const nonEmpty = fields.filter((f) => f.trim()).length;
    if (nonEmpty === 12 && fields.slice(12).every((f) => !f.trim())) {
      this.pendingHeader = { fields, line: this.line, problem: r.problem };
      return;
    }
    throw new InputProblem(`not the Netflix titles dataset: ${r.problem}`, this.line);
  }

  private failHeader(): never {
    const ph = this.pendingHeader!;
    throw new InputProblem(`not the Netflix titles dataset: ${ph.problem}`, ph.line);
  }

  private useMapping(m: HeaderMapping) {
    this.stats.header = m;
    this.cols = m.index;
  }

  private reject(buf: Buffer, start: number, end: number, reason: string, late?: 'mdy' | 'dmy') {
    const showIdField = this.cols[0] < this.nf ? this.value(buf, this.cols[0]).trim() : '';
    const r: Reject = { line: this.line, showId: showIdField || null, reason, record: this.recordText(buf, start, end) };
    if (late) {
      const list = late === 'mdy' ? this.slash.contradictMdy : this.slash.contradictDmy;
      if (list.length <= this.opts.maxRejects) list.push(r);
      return;
    }
    this.stats.rejects.push(r);
    this.opts.lists?.rejectLast();
    if (this.stats.rejects.length > this.opts.maxRejects) {
      throw new InputProblem(`more than ${this.opts.maxRejects} rows rejected (this one: ${reason}); ` +
        'this does not look like a loadable copy of the dataset (raise --max-rejects to load the rest anyway)', this.line);
    }
  }

  private row(buf: Buffer, start: number, end: number) {
    const m = this.stats.header!;
    const map = this.cols;
    // column count: the header's width; extra trailing fields are tolerated only when empty
    if (this.nf !== m.width) {
      const needed = Math.max(...map) + 1;
      let ok = this.nf >= needed;
      if (ok && this.nf > m.width) {
        for (let k = m.width; k < this.nf; k++) if (!this.blank(buf, k)) { ok = false; break; }
        if (ok) this.defect('extra_empty_columns');
      }
      if (!ok) {
        const span = this.recLines ? ` (the record runs over lines ${this.line}-${this.line + this.recLines}: a quote may be unbalanced)` : '';
        throw new InputProblem(`expected ${m.width} columns, found ${this.nf}${span}`, this.line);
      }
    }
    this.stats.rows++;

    // whitespace defects, counted here and fixed in SQL; the lists go to the worker (empty ones as [0, 0))
    let kinds = 0;
    const ranges = this.listRanges;
    ranges.fill(0);
    for (let t = 0; t < TEXT_COLUMNS.length; t++) {
      const c = TEXT_COLUMNS[t];
      const k = map[TEXT_INDEX[t]];
      const q = this.f[k * 3 + 2] & 1; // inside the quotes (no tuple per field: this runs 6 M times)
      const s = this.f[k * 3] + q, e = this.f[k * 3 + 1] - q;
      if (e <= s) { this.stats.missing[c] = (this.stats.missing[c] ?? 0) + 1; continue; }
      const l = LIST_AT[t];
      if (l >= 0) {
        ranges[2 * l] = s;
        ranges[2 * l + 1] = e;
        kinds |= this.f[k * 3 + 2] << (2 * l);
      }
      if (isBlank(buf[s]) || isBlank(buf[e - 1]) || (buf[s] === 0xc2 && buf[s + 1] === 0xa0) || (buf[e - 2] === 0xc2 && buf[e - 1] === 0xa0)) {
        if (this.blank(buf, k)) { this.stats.missing[c] = (this.stats.missing[c] ?? 0) + 1; continue; }
        this.defect('whitespace_trimmed');
      }
      if (this.f[k * 3 + 2] === 2) this.defect('stray_quotes');
    }
    this.opts.lists?.row(this.line, ranges, kinds);

    if (!this.plainShowId(buf, map[0])) {
      const showId = this.value(buf, map[0]).trim();
      if (!showId) return this.reject(buf, start, end, 'show_id is empty');
      if (showId.length > 64) return this.reject(buf, start, end, `show_id is longer than 64 characters`);
    }
    if (this.blank(buf, map[2])) return this.reject(buf, start, end, 'title is empty');

    const tv = this.cached(this.types, buf, map[1]);
    if (!tv.type) return this.reject(buf, start, end, `type ${JSON.stringify(tv.t)} is neither "Movie" nor "TV Show"`);
    const type = tv.type;
    if (tv.spelling) this.defect('type_spelling');
    if (tv.raw !== tv.t) this.defect('whitespace_trimmed');

    // date_added
    const dv = this.cached(this.dates, buf, map[6]);
    const dateT = dv.t;
    let date: number | null = null, mdy: number | null = null, dmy: number | null = null;
    if (dateT) {
      if (dv.raw !== dateT) this.defect('whitespace_trimmed');
      const d = dv.parsed;
      if (!d) return this.reject(buf, start, end, `date_added ${JSON.stringify(dateT)} is not a date (expected e.g. "September 25, 2021", "25-Sep-21", "2021-09-25" or "9/25/2021")`);
      this.stats.dateShapes[d.shape] = (this.stats.dateShapes[d.shape] ?? 0) + 1;
      if (d.shape === 'M/D/YYYY or D/M/YYYY') {
        this.slash.any = true;
        const forced = this.opts.dateOrder;
        if (forced) {
          const v = forced === 'mdy' ? d.mdy : d.dmy;
          if (!v) return this.reject(buf, start, end, `date_added ${JSON.stringify(dateT)} is not a valid ${forced === 'mdy' ? 'month/day/year' : 'day/month/year'} date (--date-order ${forced})`);
          date = forced === 'mdy' ? dv.mdy : dv.dmy;
        } else {
          if (d.mdy && !d.dmy) { this.slash.mdyOnlyCount++; this.reject(buf, start, end, `date_added ${JSON.stringify(dateT)} reads only as month/day/year, but the file's dates are day/month/year`, 'dmy'); }
          if (d.dmy && !d.mdy) { this.slash.dmyOnlyCount++; this.reject(buf, start, end, `date_added ${JSON.stringify(dateT)} reads only as day/month/year, but the file's dates are month/day/year`, 'mdy'); }
          mdy = dv.mdy;
          dmy = dv.dmy;
        }
      } else date = dv.iso;
    } else this.stats.missing.date_added = (this.stats.missing.date_added ?? 0) + 1;

    const yv = this.cached(this.years, buf, map[7]);
    const yearT = yv.t;
    if (!yv.ok) return this.reject(buf, start, end, `release_year ${JSON.stringify(yearT)} is not a year between 1900 and 2100`);
    if (!yearT) this.stats.missing.release_year = (this.stats.missing.release_year ?? 0) + 1;

    const rv = this.cached(this.ratings, buf, map[8]);
    let rating = rv.t;
    let du = this.cached(this.durations, buf, map[9]);
    if (rv.isDuration && !du.t) {
      du = parseDuration(rating);
      rating = '';
      this.defect('rating_holds_duration');
    }
    if (!rating) this.stats.missing.rating = (this.stats.missing.rating ?? 0) + 1;
    let minutes: number | null = null, seasons: number | null = null;
    if (du.t) {
      const duration = du.t;
      if (!du.ok) return this.reject(buf, start, end, `duration ${JSON.stringify(duration)} is neither "N min" nor "N Season(s)"`);
      if (du.isMin && type !== 'Movie') return this.reject(buf, start, end, `duration ${JSON.stringify(duration)} is in minutes but the type is ${type}`);
      if (!du.isMin && type !== 'TV Show') return this.reject(buf, start, end, `duration ${JSON.stringify(duration)} counts seasons but the type is ${type}`);
      if (du.spelling) this.defect('duration_spelling');
      if (du.isMin) minutes = du.n; else seasons = du.n;
    } else this.stats.missing.duration = (this.stats.missing.duration ?? 0) + 1;

    // the staging row (STAGING_COLUMNS)
    const o = this.out;
    o.row(STAGING_COLUMNS.length).int4(this.line);
    this.text(buf, map[0]);
    o.text(type);
    for (let c = 2; c <= 5; c++) this.text(buf, map[c]);
    o.nullableInt4(date).nullableInt4(mdy).nullableInt4(dmy);
    if (yv.year === null) o.null(); else o.int2(yv.year);
    o.nullableText(rating || null).nullableInt4(minutes).nullableInt4(seasons);
    this.text(buf, map[10]);
    this.text(buf, map[11]);
  }

  /** A text field as its bytes (inside its quotes); empty and unquoted is NULL, as in COPY CSV. */
  private text(buf: Buffer, k: number) {
    const o = k * 3;
    const kind = this.f[o + 2];
    if (kind === 3) { this.out.text(this.value(buf, k)); return; }
    const s = this.f[o] + (kind & 1), e = this.f[o + 1] - (kind & 1);
    if (e === s && kind === 0) this.out.null(); else this.out.textBytes(buf, s, e);
  }

  private decideDateOrder() {
    const s = this.slash;
    if (!s.any) return;
    if (this.opts.dateOrder) {
      this.stats.dateOrder = { order: this.opts.dateOrder, reason: '--date-order' };
      return;
    }
    let order: DateOrder;
    let reason: string;
    if (s.dmyOnlyCount && !s.mdyOnlyCount) { order = 'dmy'; reason = `${s.dmyOnlyCount} date(s) read only as day/month/year`; }
    else if (s.mdyOnlyCount && !s.dmyOnlyCount) { order = 'mdy'; reason = `${s.mdyOnlyCount} date(s) read only as month/day/year`; }
    else if (!s.mdyOnlyCount && !s.dmyOnlyCount) {
      order = 'mdy';
      reason = 'no date in the file tells day from month; read as month/day/year (US, like Kaggle). Pass --date-order dmy if that is wrong';
    } else {
      order = s.dmyOnlyCount > s.mdyOnlyCount ? 'dmy' : 'mdy';
      reason = `${Math.max(s.dmyOnlyCount, s.mdyOnlyCount)} date(s) read only as ${order === 'dmy' ? 'day/month' : 'month/day'}/year, ` +
        `${Math.min(s.dmyOnlyCount, s.mdyOnlyCount)} only the other way (rejected)`;
    }
    this.stats.dateOrder = { order, reason };
    // the rows whose date reads only the other way were staged; they become rejects now
    const losers = order === 'dmy' ? s.contradictDmy : s.contradictMdy;
    for (const r of losers) {
      this.stats.rejects.push(r);
      this.stats.lateRejectLines.push(r.line);
    }
    const lost = order === 'dmy' ? s.mdyOnlyCount : s.dmyOnlyCount;
    if (this.stats.rejects.length > this.opts.maxRejects || lost > losers.length) {
      throw new InputProblem(`more than ${this.opts.maxRejects} rows rejected; ${lost} dates contradict the file's ${order} date order`);
    }
  }
}
