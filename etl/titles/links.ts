// The link lists (directors, cast, countries, genres) normalized in node while the file streams (for big inputs on a
// worker thread beside the CSV stage: links-worker.ts). This is the only place lists are split: each list is cut on
// ",", its items trimmed, emptied items dropped, repeats dropped with the first occurrence keeping its place; every
// name gets a local id from a byte-keyed table (names repeat, so the tables stay small and a repeat costs no string),
// and each staged row's local ids are spooled to a temp file — bounded memory, whatever the file's size.
// After the titles are matched, the spool is read back and written straight into the link tables with COPY: no
// staging of link rows, no unnest or name joins in SQL. A list whose staged text is not already its items joined by
// ", " (a "clean" list) is also handed back re-joined that way, so SQL's unchanged-or-updated compare reads every
// list with a plain string_to_array(…, ', ') (load.ts).
import fs from 'node:fs';
import { Readable } from 'node:stream';

/** In the order the CSV stage meets the list columns (director, cast, country, listed_in). */
export const LINK_KINDS = ['directors', 'cast', 'countries', 'genres'] as const;
export type LinkKind = (typeof LINK_KINDS)[number];
/** The name table of each kind of list (cast and directors share people). */
export const NAME_TABLE = { genres: 'genres', countries: 'countries', cast: 'people', directors: 'people' } as const;
export type NameTable = (typeof NAME_TABLE)[LinkKind];

const QUOTE = 0x22, COMMA = 0x2c, SPACE = 0x20, TAB = 0x09;
/** A byte an item may not start or end with in a clean list: whatever splitList() trims. */
const isTrimmed = (b: number) => b === SPACE || b === TAB || b === 0x0a || b === 0x0d;

const fnv = (h: number, b: number) => Math.imul(h ^ b, 16777619);

/**
 * The hash names are interned by: FNV-1a of the length and of at most the first and last 8 bytes (a longer name's
 * middle rarely tells it apart, and hashing every byte of every list was a third of the list worker's time). Equal
 * hashes are always confirmed byte by byte, so a collision costs a comparison, never a wrong id.
 */
export function hashBytes(buf: Uint8Array, s: number, e: number): number {
  let h = fnv(0x811c9dc5 | 0, e - s);
  if (e - s <= 16) {
    for (let i = s; i < e; i++) h = fnv(h, buf[i]);
    return h;
  }
  for (let i = s; i < s + 8; i++) h = fnv(h, buf[i]);
  for (let i = e - 8; i < e; i++) h = fnv(h, buf[i]);
  return h;
}

/**
 * A list as its items: cut on ",", each item trimmed of spaces, tabs, CR and LF at both ends (nothing else: a
 * no-break space stays), no empty items, no exact repeats (case counts; the first occurrence keeps its place).
 */
function splitList(value: string, clean: boolean): string[] {
  if (value === '') return [];
  if (clean) return value.split(', ');
  const out: string[] = [];
  for (const part of value.split(',')) {
    const item = part.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (item && !out.includes(item)) out.push(item);
  }
  return out;
}

/** Where the CSV stage sends each row's four list fields (LinkWorker in links-worker.ts). */
export interface ListSink {
  /**
   * A row's lists: [start, end) in the batch's buffer per kind (LINK_KINDS order); `kinds`: 2 bits per list, its
   * field's kind in the CSV scan (0 plain, 1 quoted, 2 plain with stray quotes, 3 quoted with "" escapes).
   */
  row(line: number, ranges: Int32Array, kinds: number): void;
  /** The last row turned out rejected: its lists are counted for defects, not spooled. */
  rejectLast(): void;
  /** Hands over the rows given since the last batch, their ranges in buf[0, used); cb when more may follow. */
  batch(buf: Buffer, used: number, cb: (e?: Error) => void): void;
}

/** What a NameIds holds, to rebuild it on another thread. */
export interface NameSnapshot { arena: Uint8Array<ArrayBuffer>; starts: Int32Array<ArrayBuffer>; hashes: Int32Array<ArrayBuffer>; count: number }

/** Names by their UTF-8 bytes -> local ids from 1 (open addressing on an FNV-1a hash; bytes compared on a match). */
export class NameIds {
  private arena = Buffer.allocUnsafe(1 << 16);
  private used = 0;
  private starts = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  /** Open addressing: (hash, local id) pairs side by side, so a probe reads one cache line, not two. */
  private slots = new Int32Array(2 * 2048);
  count = 0;

  id(buf: Buffer, s: number, e: number, h: number): number {
    const len = e - s;
    const slots = this.slots;
    const mask = (slots.length >> 1) - 1;
    let i = h & mask;
    for (let lid = slots[2 * i + 1]; lid !== 0; lid = slots[2 * i + 1]) {
      if (slots[2 * i] === h) {
        const a = this.starts[lid];
        if (this.starts[lid + 1] - a === len) {
          let k = 0;
          while (k < len && this.arena[a + k] === buf[s + k]) k++;
          if (k === len) return lid;
        }
      }
      i = (i + 1) & mask;
    }
    // a new name
    const lid = ++this.count;
    if (lid + 2 > this.starts.length) {
      const st = new Int32Array(this.starts.length * 2); st.set(this.starts); this.starts = st;
      const hs = new Int32Array(this.hashes.length * 2); hs.set(this.hashes); this.hashes = hs;
    }
    if (this.used + len > this.arena.length) {
      const next = Buffer.allocUnsafe(Math.max(this.arena.length * 2, this.used + len));
      this.arena.copy(next, 0, 0, this.used);
      this.arena = next;
    }
    buf.copy(this.arena, this.used, s, e);
    this.starts[lid] = this.used;
    this.used += len;
    this.starts[lid + 1] = this.used;
    this.hashes[lid] = h;
    if (lid * 2 > mask) this.rehash(); else { slots[2 * i] = h; slots[2 * i + 1] = lid; }
    return lid;
  }

  /** A table twice the size (or sized for count names), every name placed again. */
  private rehash(size = this.slots.length) {
    while (size >> 1 <= this.count * 2 + 1) size *= 2;
    const slots = this.slots = new Int32Array(size);
    const mask = (size >> 1) - 1;
    for (let l = 1; l <= this.count; l++) {
      let j = this.hashes[l] & mask;
      while (slots[2 * j + 1] !== 0) j = (j + 1) & mask;
      slots[2 * j] = this.hashes[l];
      slots[2 * j + 1] = l;
    }
  }

  idOf(name: string): number {
    const b = Buffer.from(name, 'utf8');
    return this.id(b, 0, b.length, hashBytes(b, 0, b.length));
  }

  snapshot(): NameSnapshot {
    return { arena: this.arena.subarray(0, this.used), starts: this.starts.slice(0, this.count + 2),
      hashes: this.hashes.slice(0, this.count + 2), count: this.count };
  }

  static from(snap: NameSnapshot): NameIds {
    const n = new NameIds();
    n.arena = Buffer.from(snap.arena.buffer, snap.arena.byteOffset, snap.arena.byteLength);
    n.used = snap.arena.byteLength;
    n.starts = snap.starts;
    n.hashes = snap.hashes;
    n.count = snap.count;
    n.rehash();
    return n;
  }

  name(lid: number): string { return this.arena.toString('utf8', this.starts[lid], this.starts[lid + 1]); }

  /** COPY text rows (local id, name) of the names marked in `used`, straight from their bytes. */
  copyRows(used: Uint8Array): Readable {
    const self = this;
    return Readable.from((function* () {
      let out = Buffer.allocUnsafe(1 << 16);
      let o = 0;
      for (let lid = 1; lid <= self.count; lid++) {
        if (!used[lid]) continue;
        const a = self.starts[lid], e = self.starts[lid + 1];
        if (o + 12 + 2 * (e - a) > out.length) {
          yield out.subarray(0, o);
          out = Buffer.allocUnsafe(Math.max(1 << 16, 12 + 2 * (e - a)));
          o = 0;
        }
        o = digits(out, o, lid);
        out[o++] = 9;
        for (let i = a; i < e; i++) {
          const b = self.arena[i];
          // COPY text format escapes
          if (b === 92) { out[o++] = 92; out[o++] = 92; }
          else if (b === 9) { out[o++] = 92; out[o++] = 116; }
          else if (b === 10) { out[o++] = 92; out[o++] = 110; }
          else if (b === 13) { out[o++] = 92; out[o++] = 114; }
          else out[o++] = b;
        }
        out[o++] = 10;
      }
      if (o) yield out.subarray(0, o);
    })(), { objectMode: false });
  }
}

/** Where the record at p ends, or -1 when it is not complete within the first `have` words. */
function recordEnd(w: Uint32Array, p: number, have: number): number {
  let end = p + 1;
  for (let k = 0; k < LINK_KINDS.length; k++) {
    if (end >= have) return -1;
    end += 1 + w[end];
  }
  return end <= have ? end : -1;
}

/** Writes a non-negative integer's decimal digits at o; returns the offset after them. */
function digits(buf: Buffer, o: number, n: number): number {
  if (n < 10) { buf[o] = 48 + n; return o + 1; }
  let len = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
  for (let i = o + len - 1; i >= o; i--) { buf[i] = 48 + (n % 10); n = Math.floor(n / 10); }
  return o + len;
}

const WORDS = 1 << 18; // 1 MB of spool per write

/**
 * All of `bytes` to the spool: fs.writeSync may write part of a buffer (a disk filling up, a file-size limit) and
 * say so only by its count, so it is called until everything is written; the failing call's error (ENOSPC, EFBIG)
 * names the spool file, so the operator knows which disk is full.
 */
function writeAll(fd: number, bytes: Uint8Array, file: string) {
  try {
    for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at);
  } catch (e: any) {
    throw Object.assign(new Error(`cannot write the temporary spool ${file} (${e.code ?? 'error'}: ${e.message}); ` +
      'free space there or point TMPDIR at a disk with room'), { code: e.code });
  }
}

export class LinkSpool {
  readonly names: Record<NameTable, NameIds>;
  private fd: number;
  private readonly file: string;
  private words = new Uint32Array(WORDS + 4096);
  private pos = 0;
  private committed = 0;
  private countAt = 0;

  /** The spool in `file`: written from scratch (fresh names), or read back with the names it was written with. */
  constructor(file: string, names?: Record<NameTable, NameIds>) {
    this.names = names ?? { genres: new NameIds(), countries: new NameIds(), people: new NameIds() };
    this.file = file;
    this.fd = fs.openSync(file, names ? 'r' : 'w');
  }

  private grow() {
    const next = new Uint32Array(this.words.length * 2);
    next.set(this.words);
    this.words = next;
  }

  // A record: line, then per kind (LINK_KINDS order) a count and that many local ids. begin() drops an uncommitted one.
  begin(line: number) {
    this.pos = this.committed;
    if (this.pos + 2 >= this.words.length) this.grow();
    this.words[this.pos++] = line;
  }
  list() {
    if (this.pos + 1 >= this.words.length) this.grow();
    this.countAt = this.pos;
    this.words[this.pos++] = 0;
  }
  item(lid: number) {
    if (this.pos + 1 >= this.words.length) this.grow();
    this.words[this.pos++] = lid;
    this.words[this.countAt]++;
  }
  commit() {
    this.committed = this.pos;
    if (this.committed >= WORDS) this.flush();
  }

  private flush() {
    if (this.committed) writeAll(this.fd, new Uint8Array(this.words.buffer, 0, this.committed * 4), this.file);
    this.pos = this.committed = 0;
  }

  /** The spool a read at a time: word arrays whose [from, to) holds whole records. */
  private *blocks(): Generator<[Uint32Array, number, number]> {
    this.flush();
    let w = new Uint32Array(WORDS);
    let have = 0; // words in w
    let fileAt = 0;
    for (;;) {
      if (have === w.length) { const g = new Uint32Array(w.length * 2); g.set(w); w = g; }
      const got = fs.readSync(this.fd, new Uint8Array(w.buffer, have * 4, (w.length - have) * 4), 0, (w.length - have) * 4, fileAt);
      fileAt += got;
      have += got >> 2;
      let p = 0;
      for (let end = recordEnd(w, p, have); end !== -1; end = recordEnd(w, p, have)) p = end;
      if (p) yield [w, 0, p];
      w.copyWithin(0, p, have);
      have -= p;
      if (got === 0) break;
    }
  }

  /** Calls fn for every record: its line, and the words with the offset of its first list's count. */
  forEach(fn: (line: number, w: Uint32Array, at: number) => void) {
    for (const [w, from, to] of this.blocks()) {
      for (let p = from; p < to;) {
        fn(w[p], w, p + 1);
        let end = p + 1;
        for (let k = 0; k < LINK_KINDS.length; k++) end += 1 + w[end];
        p = end;
      }
    }
  }

  /**
   * COPY text rows for one link table: (title_id, name id[, ord]) for each spooled row whose line maps to a title
   * being written (titleIds[line] > 0); produced a spool read at a time, as COPY takes them.
   */
  copyRows(kind: LinkKind, titleIds: Float64Array, nameIds: Float64Array): Readable {
    const k = LINK_KINDS.indexOf(kind);
    const ordered = kind === 'cast' || kind === 'directors';
    const blocks = this.blocks();
    const CHUNK_OUT = 1 << 18;
    return Readable.from((function* () {
      // COPY text written as bytes in 256 kB chunks (no per-row strings): at most 51 bytes a row
      let out = Buffer.allocUnsafe(CHUNK_OUT);
      let o = 0;
      for (const [w, from, to] of blocks) {
        for (let p = from; p < to;) {
          const tid = titleIds[w[p]];
          let a = p + 1;
          for (let j = 0; j < k; j++) a += 1 + w[a];
          if (tid) {
            const n = w[a];
            for (let i = 0; i < n; i++) {
              if (o > CHUNK_OUT - 51) { yield out.subarray(0, o); out = Buffer.allocUnsafe(CHUNK_OUT); o = 0; }
              o = digits(out, o, tid);
              out[o++] = 9;
              o = digits(out, o, nameIds[w[a + 1 + i]]);
              if (ordered) { out[o++] = 9; o = digits(out, o, i); }
              out[o++] = 10;
            }
          }
          let end = p + 1;
          for (let j = 0; j < LINK_KINDS.length; j++) end += 1 + w[end];
          p = end;
        }
      }
      if (o) yield out.subarray(0, o);
    })(), { objectMode: false });
  }

  /** Writes what is committed and closes the file (once: a second call must not close a descriptor reused since). */
  close() {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      if (this.committed) writeAll(fd, new Uint8Array(this.words.buffer, 0, this.committed * 4), this.file);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * One row's lists into a spool: each list checked (is it clean: items joined by exactly ", ", no blank edges, no
 * repeats — compared by hashBytes, a collision only makes a clean list take splitList's full path), split, its
 * names interned. Counts the lists with empty items (a defect the summary reports).
 */
export class ListSplitter {
  emptyItems = 0;
  private readonly hashes = new Int32Array(128);
  private readonly starts = new Int32Array(128);
  private readonly ends = new Int32Array(128);
  private n = 0;
  private quote = false; // a quote inside the list: its bytes are not its value

  /**
   * Spools the items of the list in buf[s, e) unless spool is null. Returns the items joined by ", " when the list
   * is not clean (its staged text is not that), else null (and null when spool is null: the row is rejected).
   * `kind`: its field's kind in the CSV scan (2 and 3: a quote inside; 3: quoted with "" escapes).
   */
  list(spool: LinkSpool | null, names: NameIds, buf: Buffer, s: number, e: number, kind: number): string | null {
    const dirty = (kind < 2 && this.clean(buf, s, e)) ? false : this.dirty(buf, s, e);
    if (!spool) return null;
    if (!dirty && !this.quote) {
      // the common case: the items' bytes and hashes are already known
      for (let i = 0; i < this.n; i++) spool.item(names.id(buf, this.starts[i], this.ends[i], this.hashes[i]));
      return null;
    }
    const v = buf.toString('utf8', s, e);
    const items = splitList(kind === 3 ? v.replace(/""/g, '"') : v, !dirty);
    for (const name of items) spool.item(names.idOf(name));
    return dirty ? items.join(', ') : null;
  }

  /**
   * The common case, found without visiting every byte: no quote (the CSV scan says), no blank or comma at the edges,
   * every comma followed by one space and an item (indexOf finds the commas natively). False: let dirty() decide.
   */
  private clean(buf: Buffer, s: number, e: number): boolean {
    this.n = 0;
    this.quote = false;
    if (isTrimmed(buf[s]) || isTrimmed(buf[e - 1]) || buf[s] === COMMA || buf[e - 1] === COMMA) return false;
    for (let item = s; ;) {
      let c = buf.indexOf(COMMA, item);
      if (c === -1 || c > e) c = e;
      if (c < e && (buf[c + 1] !== SPACE || c + 2 >= e || isTrimmed(buf[c + 2]) || buf[c + 2] === COMMA || isTrimmed(buf[c - 1]))) return false;
      if (this.repeated(hashBytes(buf, item, c), item, c)) return false;
      if (c === e) return true;
      item = c + 2;
    }
  }

  private dirty(buf: Buffer, s: number, e: number): boolean {
    let dirty = isTrimmed(buf[s]) || isTrimmed(buf[e - 1]) || buf[s] === COMMA || buf[e - 1] === COMMA;
    let empty = false, text = false, item = s;
    this.n = 0;
    this.quote = false;
    for (let i = s; i < e; i++) {
      const b = buf[i];
      // most bytes are letters, above every byte this loop looks for (tab, space, quote, comma): one comparison
      if (b <= COMMA) {
        if (b === COMMA) {
          if (!text) empty = true;
          if (!dirty) dirty = this.repeated(hashBytes(buf, item, i), item, i);
          text = false;
          if (!dirty && !(buf[i + 1] === SPACE && i + 2 < e && !isTrimmed(buf[i + 2]) && buf[i + 2] !== COMMA && !isTrimmed(buf[i - 1]))) dirty = true;
          if (buf[i + 1] === SPACE) i++;
          item = i + 1;
          continue;
        }
        if (b === QUOTE) this.quote = true;
        if (b !== SPACE && b !== TAB) text = true;
      } else text = true;
    }
    if (!text) empty = true;
    if (!dirty) dirty = this.repeated(hashBytes(buf, item, e), item, e);
    if (empty) this.emptyItems++;
    return dirty || empty;
  }

  /** Whether an item with this hash was already in the list; remembers it and where it is. */
  private repeated(h: number, s: number, e: number): boolean {
    const n = this.n;
    for (let k = 0; k < n; k++) if (this.hashes[k] === h) return true;
    if (n >= this.hashes.length) return true;
    this.hashes[n] = h;
    this.starts[n] = s;
    this.ends[n] = e;
    this.n = n + 1;
    return false;
  }
}
