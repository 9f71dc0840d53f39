// The link lists (genres, countries, cast, directors) normalized in node while the file streams: each list is split
// the way the CSV stage promised (clean lists on ", "; the rest trimmed, emptied items dropped, repeats dropped with
// the first occurrence keeping its place), every name gets a local id (names repeat: the maps stay small), and each
// staged row's local ids are spooled to a temp file — bounded memory, whatever the file's size. After the titles are
// matched, the spool is read back and written straight into the link tables with COPY: no staging of link rows, no
// unnest or name joins in SQL.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';

export const LINK_KINDS = ['genres', 'countries', 'cast', 'directors'] as const;
export type LinkKind = (typeof LINK_KINDS)[number];
/** The name table of each kind of list (cast and directors share people). */
export const NAME_TABLE = { genres: 'genres', countries: 'countries', cast: 'people', directors: 'people' } as const;
export type NameTable = (typeof NAME_TABLE)[LinkKind];

const CHUNK = 1 << 20;

/** A list as its items: trimmed, no empty items, no repeats (the first occurrence keeps its place). */
export function splitList(value: string, clean: boolean): string[] {
  if (value === '') return [];
  if (clean) return value.split(', ');
  const out: string[] = [];
  for (const part of value.split(',')) {
    const item = part.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    if (item && !out.includes(item)) out.push(item);
  }
  return out;
}

export class LinkSpool {
  /** Local ids from 1, per name table, in order of first appearance. */
  readonly names: Record<NameTable, string[]> = { genres: [''], countries: [''], people: [''] };
  private readonly ids: Record<NameTable, Map<string, number>> = { genres: new Map(), countries: new Map(), people: new Map() };
  private readonly dir: string;
  private readonly file: string;
  private fd: number;
  private buf = Buffer.allocUnsafe(CHUNK);
  private pos = 0;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-etl-links-'));
    this.file = path.join(this.dir, 'links.bin');
    this.fd = fs.openSync(this.file, 'w+');
  }

  private id(table: NameTable, name: string): number {
    let id = this.ids[table].get(name);
    if (id === undefined) {
      id = this.names[table].length;
      this.names[table].push(name);
      this.ids[table].set(name, id);
    }
    return id;
  }

  /** One staged row's lists, in LINK_KINDS order. Record: line, then per kind a count and that many local ids. */
  add(line: number, lists: string[][]) {
    let n = 1;
    for (const l of lists) n += 1 + l.length;
    if (this.pos + n * 4 > this.buf.length) this.flush(n * 4);
    const b = this.buf;
    let p = this.pos;
    b.writeUInt32LE(line, p); p += 4;
    for (let k = 0; k < LINK_KINDS.length; k++) {
      const l = lists[k];
      const table = NAME_TABLE[LINK_KINDS[k]];
      b.writeUInt32LE(l.length, p); p += 4;
      for (const name of l) { b.writeUInt32LE(this.id(table, name), p); p += 4; }
    }
    this.pos = p;
  }

  private flush(need = 0) {
    if (this.pos) fs.writeSync(this.fd, this.buf, 0, this.pos);
    this.pos = 0;
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
  }

  /** Every spooled record, in order: (line, lists of local ids as offsets into `ids`). */
  *records(): Generator<{ line: number; ids: Uint32Array; at: number[] }> {
    this.flush();
    const chunk = Buffer.allocUnsafe(CHUNK);
    let carry = Buffer.alloc(0);
    let fileAt = 0;
    for (;;) {
      const got = fs.readSync(this.fd, chunk, 0, CHUNK, fileAt);
      if (got === 0) break;
      fileAt += got;
      const data = carry.length ? Buffer.concat([carry, chunk.subarray(0, got)]) : chunk.subarray(0, got);
      // copy into an aligned word array once per chunk
      const words = new Uint32Array(data.length >> 2);
      for (let i = 0, o = 0; i < words.length; i++, o += 4) words[i] = data.readUInt32LE(o);
      let w = 0;
      for (;;) {
        // a record is complete when its four counts and their ids are all here
        let end = w + 1;
        let ok = true;
        const at: number[] = [];
        for (let k = 0; k < LINK_KINDS.length; k++) {
          if (end >= words.length) { ok = false; break; }
          at.push(end);
          end += 1 + words[end];
        }
        if (!ok || end > words.length) break;
        yield { line: words[w], ids: words, at };
        w = end;
      }
      carry = Buffer.from(data.subarray(w * 4));
    }
  }

  /**
   * COPY text rows for one link table: (title_id, name id[, ord]) for each staged row whose line maps to a title
   * being written (titleIds[line] > 0).
   */
  copyRows(kind: LinkKind, titleIds: Float64Array, nameIds: Float64Array): Readable {
    const k = LINK_KINDS.indexOf(kind);
    const ordered = kind === 'cast' || kind === 'directors';
    const recs = this.records();
    return new Readable({
      highWaterMark: 1 << 16,
      read() {
        let out = '';
        for (;;) {
          const r = recs.next();
          if (r.done) { if (out) this.push(out); this.push(null); return; }
          const { line, ids, at } = r.value;
          const tid = titleIds[line];
          if (!tid) continue;
          const a = at[k];
          const n = ids[a];
          for (let i = 0; i < n; i++) {
            out += ordered ? `${tid}\t${nameIds[ids[a + 1 + i]]}\t${i}\n` : `${tid}\t${nameIds[ids[a + 1 + i]]}\n`;
          }
          if (out.length >= 1 << 16) { this.push(out); return; }
        }
      },
    });
  }

  close() {
    try { fs.closeSync(this.fd); } catch { /* already closed */ }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
