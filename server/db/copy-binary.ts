// PostgreSQL's binary COPY format (COPY … FROM STDIN (FORMAT binary)), written straight into preallocated buffers:
// PostgreSQL skips parsing text (timestamps above all) and node skips formatting it (no ISO strings, no escaping).
// One encoder for every table the simulator writes and for the titles ETL's staging rows. Each field goes in the
// column type's binary wire format, so a column must receive exactly its type (int8 for bigint, int4 for integer,
// int2 for smallint, …): COPY checks lengths.
// https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_BYTES = SIGNATURE.length + 8; // flags (int32) + header extension length (int32)
const CHUNK = 1 << 20;
/** 2000-01-01T00:00:00Z, PostgreSQL's timestamp epoch, in Unix milliseconds. */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 4_294_967_296;
const NUMERIC_CACHE = new Map<number, Map<number, Buffer>>();
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) { HEX['0123456789abcdef'.charCodeAt(i)] = i; HEX['0123456789ABCDEF'.charCodeAt(i)] = i; }

const viewOf = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Writes `s` as UTF-8 at `at`, returning the byte count: short ASCII strings byte by byte (cheaper than a native call). */
function asciiWrite(buf: Buffer, s: string, at: number): number {
  if (s.length > 48) return buf.write(s, at, 'utf8');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127) return buf.write(s, at, 'utf8');
    buf[at + i] = c;
  }
  return s.length;
}

/**
 * One table's rows for one COPY statement: `row(fields)` starts a tuple, then one call per field in column order.
 * Bytes land in 1 MiB buffers (a tuple may straddle two: the stream is what counts); `take()` hands over what was
 * written since the last take (a stream being encoded as it goes), `finish()` the rest with the trailer — the header
 * first and the trailer last, ready to stream.
 */
export class BinaryCopy {
  rows = 0;
  private chunks: Buffer[] = [];
  private buf = Buffer.allocUnsafe(CHUNK);
  private dv = viewOf(this.buf);
  private off = 0;
  /** Where the bytes not yet handed over start in buf. */
  private taken = 0;
  private finished = false;

  /** `bare`: no stream header (a scratch encoder for single fields). */
  constructor(bare = false) {
    if (bare) { this.buf = Buffer.allocUnsafe(64); this.dv = viewOf(this.buf); return; }
    SIGNATURE.copy(this.buf, 0);
    this.dv.setInt32(SIGNATURE.length, 0);
    this.dv.setInt32(SIGNATURE.length + 4, 0);
    this.off = HEADER_BYTES;
  }

  /** Starts a tuple of `fields` columns. */
  row(fields: number): this {
    if (this.finished) throw new Error('BinaryCopy: row after finish()');
    this.ensure(2);
    this.dv.setInt16(this.off, fields);
    this.off += 2;
    this.rows++;
    return this;
  }

  private ensure(bytes: number) {
    if (this.buf.length - this.off >= bytes) return;
    if (this.off > this.taken) this.chunks.push(this.buf.subarray(this.taken, this.off));
    this.buf = Buffer.allocUnsafe(Math.max(CHUNK, bytes));
    this.dv = viewOf(this.buf);
    this.off = this.taken = 0;
  }

  null(): this { this.ensure(4); this.dv.setInt32(this.off, -1); this.off += 4; return this; }

  bool(v: boolean): this {
    this.ensure(5);
    this.dv.setInt32(this.off, 1);
    this.buf[this.off + 4] = v ? 1 : 0;
    this.off += 5;
    return this;
  }

  int2(v: number): this {
    if (((v << 16) >> 16) !== v) throw new RangeError(`int2 field: ${v}`);
    this.ensure(6); this.dv.setInt32(this.off, 2); this.dv.setInt16(this.off + 4, v); this.off += 6; return this; }
  int4(v: number): this {
    if ((v | 0) !== v) throw new RangeError(`int4 field: ${v}`);
    this.ensure(8); this.dv.setInt32(this.off, 4); this.dv.setInt32(this.off + 4, v); this.off += 8; return this; }

  /** bigint from a safe integer (two's complement across two 32-bit words, no BigInt). */
  int8(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`int8 field: ${v} is not a safe integer`);
    const hi = Math.floor(v / TWO_32);
    this.ensure(12);
    this.dv.setInt32(this.off, 8);
    this.dv.setInt32(this.off + 4, hi);
    this.dv.setUint32(this.off + 8, v - hi * TWO_32);
    this.off += 12;
    return this;
  }

  /** timestamptz from Unix milliseconds, cut to whole milliseconds as a Date would: microseconds since 2000-01-01 UTC. */
  timestamptz(ms: number): this { return this.int8((Math.trunc(ms) - PG_EPOCH_MS) * 1000); }

  nullableInt4(v: number | null): this { return v === null ? this.null() : this.int4(v); }
  nullableTimestamptz(ms: number | null): this { return ms === null ? this.null() : this.timestamptz(ms); }
  nullableText(s: string | null): this { return s === null ? this.null() : this.text(s); }

  /** text (UTF-8). */
  text(s: string): this {
    this.ensure(4 + 3 * s.length); // UTF-8 never takes more than 3 bytes per UTF-16 unit
    const n = asciiWrite(this.buf, s, this.off + 4);
    this.dv.setInt32(this.off, n);
    this.off += 4 + n;
    return this;
  }

  /** text from UTF-8 bytes already in a buffer. */
  textBytes(src: Buffer, s: number, e: number): this {
    this.ensure(4 + e - s);
    this.dv.setInt32(this.off, e - s);
    if (e - s > 48) src.copy(this.buf, this.off + 4, s, e);
    else for (let i = s, o = this.off + 4; i < e; i++) this.buf[o++] = src[i]; // short: cheaper than a native call
    this.off += 4 + e - s;
    return this;
  }

  /** jsonb: format version 1, then the JSON text. */
  jsonb(json: string): this {
    this.ensure(5 + 3 * json.length);
    const n = this.buf.write(json, this.off + 5, 'utf8');
    this.dv.setInt32(this.off, n + 1);
    this.buf[this.off + 4] = 1;
    this.off += 5 + n;
    return this;
  }

  /** uuid from its canonical text form (hyphens ignored). */
  uuid(s: string): this {
    this.ensure(20);
    this.dv.setInt32(this.off, 16);
    let o = this.off + 4, hi = -1;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 45) continue; // '-'
      const d = c < 128 ? HEX[c] : -1;
      if (d < 0) throw new RangeError(`uuid field: bad character in ${JSON.stringify(s)}`);
      if (hi < 0) hi = d; else { this.buf[o++] = (hi << 4) | d; hi = -1; }
    }
    if (o !== this.off + 20 || hi >= 0) throw new RangeError(`uuid field: ${JSON.stringify(s)} is not 16 bytes`);
    this.off = o;
    return this;
  }

  /** numeric with `scale` decimal places (the value is rounded to them). Encodings of recent values are reused. */
  numeric(v: number, scale: number): this {
    let cache = NUMERIC_CACHE.get(scale);
    if (!cache) NUMERIC_CACHE.set(scale, (cache = new Map()));
    let bytes = cache.get(v);
    if (!bytes) {
      if (cache.size >= 4096) cache.clear();
      const enc = new BinaryCopy(true);
      enc.numericField(v, scale);
      bytes = enc.buf.subarray(0, enc.off);
      cache.set(v, bytes);
    }
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.off);
    this.off += bytes.length;
    return this;
  }

  /** numeric in its wire format: base-10000 digits, weight, sign, display scale. */
  private numericField(v: number, scale: number) {
    if (!Number.isFinite(v)) throw new RangeError(`numeric field: ${v}`);
    const [int, frac = ''] = Math.abs(v).toFixed(scale).split('.');
    const intPart = int.replace(/^0+/, '');
    const digits: number[] = [];
    const lead = intPart.length % 4 || 4;
    if (intPart.length) {
      digits.push(Number(intPart.slice(0, lead)));
      for (let i = lead; i < intPart.length; i += 4) digits.push(Number(intPart.slice(i, i + 4)));
    }
    const weight = intPart.length ? digits.length - 1 : -1;
    for (let i = 0; i < frac.length; i += 4) digits.push(Number(frac.slice(i, i + 4).padEnd(4, '0')));
    // PostgreSQL strips zero digit groups itself; a zero value is simply no digits
    const zero = digits.every((d) => d === 0);
    const n = zero ? 0 : digits.length;
    this.ensure(12 + 2 * n);
    this.dv.setInt32(this.off, 8 + 2 * n);
    this.dv.setInt16(this.off + 4, n);
    this.dv.setInt16(this.off + 6, zero ? 0 : weight);
    this.dv.setUint16(this.off + 8, v < 0 && !zero ? 0x4000 : 0);
    this.dv.setInt16(this.off + 10, scale);
    this.off += 12;
    for (let i = 0; i < n; i++) { this.dv.setInt16(this.off, digits[i]); this.off += 2; }
  }

  /** The bytes encoded since the last take (whole tuples if called between rows), as buffers to write in order. */
  take(): Buffer[] {
    if (this.off > this.taken) this.chunks.push(this.buf.subarray(this.taken, this.off));
    this.taken = this.off;
    const out = this.chunks;
    this.chunks = [];
    return out;
  }

  /** The rest of the encoded stream, trailer last; the encoder is done after this. */
  finish(): Buffer[] {
    if (this.finished) return [];
    this.ensure(2);
    this.dv.setInt16(this.off, -1);
    this.off += 2;
    const out = this.take();
    this.buf = Buffer.alloc(0);
    this.dv = viewOf(this.buf);
    this.off = this.taken = 0;
    this.finished = true;
    return out;
  }
}
