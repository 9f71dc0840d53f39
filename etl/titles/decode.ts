// Bytes in, UTF-8 out. Real copies of the dataset come as UTF-8, UTF-8 with a BOM, Windows-1252 (Excel's "CSV"),
// or a UTF-8 file where some lines were saved again as Windows-1252. In `auto` mode every well-formed UTF-8 sequence
// is kept and every byte that cannot start or continue one is read as Windows-1252 — so whole-file Windows-1252,
// mixed files and clean UTF-8 all come out right, and the repaired lines are counted. Clean chunks take the native
// isUtf8() fast path; only chunks with bad bytes are walked byte by byte.
import { Transform, type TransformCallback } from 'node:stream';
import { isUtf8, isAscii } from 'node:buffer';
import { InputProblem } from './errors.ts';

export type EncodingMode = 'auto' | 'utf-8' | 'windows-1252';

export function parseEncoding(value: string): EncodingMode {
  const v = value.trim().toLowerCase().replace(/_/g, '-');
  if (v === 'auto') return 'auto';
  if (['utf-8', 'utf8'].includes(v)) return 'utf-8';
  // WHATWG (and every browser) reads "latin1"/"iso-8859-1" as windows-1252, its superset; so do we.
  if (['windows-1252', 'cp1252', 'win1252', 'latin1', 'latin-1', 'iso-8859-1', 'iso8859-1'].includes(v)) return 'windows-1252';
  throw new Error(`unknown encoding "${value}": use auto, utf-8 or windows-1252 (latin1)`);
}

// Windows-1252 differs from Latin-1 in 0x80..0x9F (smart quotes, dashes, €, …). Node 20's TextDecoder('windows-1252')
// decodes those bytes as Latin-1 C1 controls, silently losing ’ – — …, so the table is spelled out here.
const CP1252_HIGH = '\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F' +
  '\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178';
/** Windows-1252 byte -> its UTF-8 bytes, for 0x80..0xFF. */
const CP1252: Buffer[] = Array.from({ length: 128 }, (_, i) =>
  Buffer.from(i < 32 ? CP1252_HIGH[i] : String.fromCharCode(0x80 + i), 'utf8'));

/** A whole buffer of Windows-1252 as a string: Latin-1 natively, then the 0x80..0x9F block remapped. */
export function decodeWindows1252(buf: Buffer): string {
  return buf.toString('latin1').replace(/[\x80-\x9f]/g, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
}

/** Length of the well-formed UTF-8 sequence at buf[i] (1 for ASCII), or 0 when the byte cannot start one there. */
function utf8SeqLen(buf: Buffer, i: number, end: number): number {
  const b = buf[i];
  if (b < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < end && buf[i + k] >= lo && buf[i + k] <= hi;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b >= 0xf1 && b <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** How many bytes at the end of buf are the start of a UTF-8 sequence the next chunk completes. */
function incompleteTail(buf: Buffer): number {
  for (let k = 1; k <= 3 && k <= buf.length; k++) {
    const b = buf[buf.length - k];
    if ((b & 0xc0) === 0x80) continue;
    if (b >= 0xc0) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      return k < need ? k : 0;
    }
    return 0;
  }
  return 0;
}

export interface DecodeStats {
  bom: boolean;
  mode: EncodingMode;
  /** Lines (physical, 1-based) holding bytes read as Windows-1252 in auto mode. */
  repairedLines: number;
  repairedLineNumbers: number[];
  /** Whether the file had well-formed non-ASCII UTF-8 (tells "Windows-1252 file" from "mixed"). */
  sawUtf8: boolean;
  bytesIn: number;
}

export function describeEncoding(s: DecodeStats, forced: boolean): string {
  if (s.mode === 'windows-1252') return `Windows-1252${forced ? ' (--encoding)' : ''}`;
  const bom = s.bom ? ' with BOM' : '';
  if (s.repairedLines === 0) return `UTF-8${bom}`;
  if (!s.sawUtf8) return `Windows-1252 (detected${s.bom ? '; a UTF-8 BOM too' : ''})`;
  return `mixed: UTF-8${bom} with ${s.repairedLines} line${s.repairedLines === 1 ? '' : 's'} in Windows-1252 (repaired)`;
}

export class DecodeStream extends Transform {
  readonly stats: DecodeStats;
  private line = 1;
  private carry: Buffer | null = null;
  private started = false;
  private lastRepairedLine = 0;

  constructor(mode: EncodingMode) {
    super({ highWaterMark: 1 << 16 });
    this.stats = { bom: false, mode, repairedLines: 0, repairedLineNumbers: [], sawUtf8: false, bytesIn: 0 };
  }

  private countLines(buf: Buffer, from = 0, to = buf.length) {
    let i = buf.indexOf(10, from);
    while (i !== -1 && i < to) { this.line++; i = buf.indexOf(10, i + 1); }
  }

  private lineAt(buf: Buffer, pos: number): number {
    let n = this.line;
    let i = buf.indexOf(10);
    while (i !== -1 && i < pos) { n++; i = buf.indexOf(10, i + 1); }
    return n;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    try {
      this.stats.bytesIn += chunk.length;
      let buf = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
      this.carry = null;
      if (!this.started) {
        if (buf.length < 3 && buf.length > 0 && [0xef, 0xbb, 0xbf].slice(0, buf.length).every((b, i) => buf[i] === b)) {
          this.carry = buf; // too short to tell whether it is a BOM
          return cb();
        }
        this.started = true;
        if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) { this.stats.bom = true; buf = buf.subarray(3); }
        else if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) {
          throw new InputProblem('the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8', 1);
        }
      }
      const nul = buf.indexOf(0);
      if (nul !== -1) throw new InputProblem('binary data (a NUL byte): this is not a CSV text file', this.lineAt(buf, nul));
      cb(null, this.convert(buf, false));
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback) {
    try {
      const rest = this.carry;
      this.carry = null;
      if (rest && rest.length) {
        if (!this.started) {
          this.started = true;
        }
        cb(null, this.convert(rest, true));
      } else cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  private convert(buf: Buffer, final: boolean): Buffer {
    if (this.stats.mode === 'windows-1252') {
      this.countLines(buf);
      return Buffer.from(decodeWindows1252(buf), 'utf8');
    }
    const tail = final ? 0 : incompleteTail(buf);
    const body = tail ? buf.subarray(0, buf.length - tail) : buf;
    if (tail) this.carry = Buffer.from(buf.subarray(buf.length - tail));
    if (isUtf8(body)) {
      if (!this.stats.sawUtf8 && !isAscii(body)) this.stats.sawUtf8 = true;
      this.countLines(body);
      return body;
    }
    if (this.stats.mode === 'utf-8') {
      let i = 0;
      while (i < body.length) { const n = utf8SeqLen(body, i, body.length); if (!n) break; i += n; }
      throw new InputProblem(`invalid UTF-8 (byte 0x${body[i].toString(16).toUpperCase()}); ` +
        'run with --encoding auto (the default) to repair Windows-1252 bytes, or --encoding windows-1252', this.lineAt(body, i));
    }
    return this.repair(body);
  }

  /** Keeps well-formed UTF-8, reads every other byte as Windows-1252. */
  private repair(buf: Buffer): Buffer {
    const out = Buffer.allocUnsafe(buf.length * 3);
    let o = 0;
    const end = buf.length;
    for (let i = 0; i < end;) {
      const b = buf[i];
      if (b < 0x80) {
        out[o++] = b;
        if (b === 10) this.line++;
        i++;
        continue;
      }
      const n = utf8SeqLen(buf, i, end);
      if (n) {
        this.stats.sawUtf8 = true;
        buf.copy(out, o, i, i + n);
        o += n;
        i += n;
        continue;
      }
      const rep = CP1252[b - 0x80];
      rep.copy(out, o);
      o += rep.length;
      i++;
      if (this.lastRepairedLine !== this.line) {
        this.lastRepairedLine = this.line;
        this.stats.repairedLines++;
        if (this.stats.repairedLineNumbers.length < 20) this.stats.repairedLineNumbers.push(this.line);
      }
    }
    return out.subarray(0, o);
  }
}
