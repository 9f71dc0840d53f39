// The link lists off the main thread: the CSV stage hands each batch of rows' list fields (their bytes and ranges) to
// a worker, which splits them, interns the names and spools the link rows (links.ts) while the main thread goes on
// validating and staging the next rows. Splitting and interning was a third of the main thread's time on a big file;
// on its own core it runs beside the CSV stage and PostgreSQL's COPY. Batches travel through a ring of SLOTS shared
// buffers (no allocation, nothing for the garbage collector per batch); the main thread waits for a free slot, so
// memory stays bounded whatever the file's size. A small file is split on the main thread by the same code (starting
// a worker costs more than its lists: ~0.1 s under tsx).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parentPort, workerData, type Worker } from 'node:worker_threads';
import { startWorker } from '../worker-thread.ts';
import { LINK_KINDS, NAME_TABLE, LinkSpool, ListSplitter, NameIds, type ListSink, type NameSnapshot, type NameTable } from './links.ts';

/** Ints per row in a batch: line, flags (bit 0 rejected; bits 1 + 2k, 2 + 2k: list k's field kind), then [start, end) per list. */
const ROW_INTS = 2 + 2 * LINK_KINDS.length;
const SLOTS = 4;
const SLOT_BYTES = 1 << 21;
const SLOT_ROWS = 1 << 14;

interface Ring { bytes: SharedArrayBuffer; rows: SharedArrayBuffer }
/** A filled slot (or, for a batch bigger than a slot, its own transferred buffers: slot -1). */
interface BatchMessage { slot: number; bytes: number; rows: number; own?: { bytes: Uint8Array; rows: Int32Array } }
interface DoneMessage { type: 'done'; emptyItems: number; rewritten: RewrittenLists[]; names: Record<NameTable, NameSnapshot> }

/** A staged row's lists that are not clean, as splitList() made them: items joined by ", " (null: the staged text is that already). */
export interface RewrittenLists { line: number; lists: (string | null)[] }

export interface LinkResult {
  spool: LinkSpool;
  /** Lists with empty items (counted on every row, rejected ones too, as every other defect). */
  emptyItems: number;
  /** The staged rows with a list that is not clean: each list re-joined (LINK_KINDS order). */
  rewritten: RewrittenLists[];
}

/** The splitting side, on the worker or inline: rows in, spool and findings out. */
class Splitter {
  readonly spool: LinkSpool;
  private readonly split = new ListSplitter();
  private readonly tables: NameIds[];
  private readonly rewritten: RewrittenLists[] = [];

  constructor(file: string) {
    this.spool = new LinkSpool(file);
    this.tables = LINK_KINDS.map((k) => this.spool.names[NAME_TABLE[k]]);
  }

  rows(buf: Buffer, r: Int32Array, n: number) {
    const spool = this.spool;
    for (let p = 0; p < n * ROW_INTS; p += ROW_INTS) {
      const flags = r[p + 1];
      const keep = (flags & 1) === 0;
      if (keep) spool.begin(r[p]);
      let lists: (string | null)[] | null = null;
      for (let k = 0; k < LINK_KINDS.length; k++) {
        if (keep) spool.list();
        const s = r[p + 2 + 2 * k], e = r[p + 3 + 2 * k];
        const joined = e > s ? this.split.list(keep ? spool : null, this.tables[k], buf, s, e, (flags >> (1 + 2 * k)) & 3) : null;
        if (joined !== null) (lists ??= LINK_KINDS.map(() => null))[k] = joined;
      }
      if (!keep) continue;
      spool.commit();
      if (lists) this.rewritten.push({ line: r[p], lists });
    }
  }

  done(): DoneMessage {
    this.spool.close();
    const n = this.spool.names;
    return { type: 'done', emptyItems: this.split.emptyItems, rewritten: this.rewritten,
      names: { genres: n.genres.snapshot(), countries: n.countries.snapshot(), people: n.people.snapshot() } };
  }
}

function work({ file, ring }: { file: string; ring: Ring }) {
  const splitter = new Splitter(file);
  const bytes = Buffer.from(ring.bytes);
  const rows = new Int32Array(ring.rows);
  const local = Buffer.allocUnsafe(SLOT_BYTES);
  const localRows = new Int32Array(SLOT_ROWS * ROW_INTS);
  parentPort!.on('message', (m: BatchMessage | 'end') => {
    if (m === 'end') {
      parentPort!.postMessage(splitter.done());
      parentPort!.close();
      return;
    }
    if (m.own) {
      splitter.rows(Buffer.from(m.own.bytes.buffer, m.own.bytes.byteOffset, m.own.bytes.byteLength), m.own.rows, m.rows);
      parentPort!.postMessage(-1);
      return;
    }
    // out of the shared slot first (Buffer.indexOf is several times slower on shared memory), which frees it at once
    bytes.copy(local, 0, m.slot * SLOT_BYTES, m.slot * SLOT_BYTES + m.bytes);
    localRows.set(rows.subarray(m.slot * SLOT_ROWS * ROW_INTS, (m.slot * SLOT_ROWS + m.rows) * ROW_INTS));
    parentPort!.postMessage(m.slot);
    splitter.rows(local, localRows, m.rows);
  });
}

if (parentPort && workerData?.titlesLinks) work(workerData.titlesLinks);

// The spool's folder is named marquee-etl-links-<pid>-<start>-XXXXXX (start: the process's start time in clock ticks
// since boot, Linux; 0 elsewhere), so that a folder left by a run killed with SIGKILL (7.3 MB for the real file) is
// known as stale by the next run: its process is gone, or the pid now names a process started at another time.
const SPOOL_PREFIX = 'marquee-etl-links-';
const SPOOL_NAME = /^marquee-etl-links-(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/** A process's start time (field 22 of /proc/<pid>/stat), 0 when unknown; undefined when it does not exist. */
function startTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) || 0;
  } catch (e: any) {
    if (e.code !== 'ENOENT' || !fs.existsSync('/proc/self/stat')) {
      try { process.kill(pid, 0); return 0; } catch (k: any) { return k.code === 'EPERM' ? 0 : undefined; }
    }
    return undefined;
  }
}

/** Removes the spool folders in dir whose process is gone; returns their names. Never one of a live process. */
export function removeStaleSpools(dir = os.tmpdir()): string[] {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const name of names) {
    const m = SPOOL_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]), start = Number(m[2]);
    if (pid === process.pid) continue;
    const now = startTime(pid);
    if (now !== undefined && (now === 0 || start === 0 || now === start)) continue; // alive (or cannot tell)
    try { fs.rmSync(path.join(dir, name), { recursive: true, force: true }); removed.push(name); } catch { /* not ours to remove */ }
  }
  return removed;
}

function spoolDir(): string {
  removeStaleSpools();
  return fs.mkdtempSync(path.join(os.tmpdir(), `${SPOOL_PREFIX}${process.pid}-${startTime(process.pid) ?? 0}-`));
}

/**
 * The main thread's side: a ListSink for the CSV stage, then the spool and what the splitting found. `inline`: split
 * on this thread (small inputs).
 */
export class LinkWorker implements ListSink {
  private readonly dir = spoolDir();
  private readonly file = path.join(this.dir, 'links.bin');
  private readonly worker: Worker | null = null;
  private readonly inline: Splitter | null = null;
  // rows given since the last batch, ranges relative to that batch's buffer
  private rows = new Int32Array(ROW_INTS * 1024);
  private n = 0;
  // the slot being filled, and the free ones
  private readonly ringBytes: Buffer;
  private readonly ringRows: Int32Array;
  private readonly free: number[] = [];
  private slot = -1;
  private slotBytes = 0;
  private slotRows = 0;
  private waiting: ((e?: Error) => void) | null = null;
  /** A batch bigger than a slot is with the worker: nothing more is handed over until it is done with it. */
  private ownInFlight = false;
  private failure: Error | null = null;
  /** The worker's final message (null inline). */
  private readonly done: Promise<DoneMessage> | null = null;
  private spool: LinkSpool | null = null;

  constructor(inline = false) {
    const ring: Ring = inline ? { bytes: new SharedArrayBuffer(0), rows: new SharedArrayBuffer(0) }
      : { bytes: new SharedArrayBuffer(SLOTS * SLOT_BYTES), rows: new SharedArrayBuffer(SLOTS * SLOT_ROWS * ROW_INTS * 4) };
    this.ringBytes = Buffer.from(ring.bytes);
    this.ringRows = new Int32Array(ring.rows);
    if (inline) {
      this.inline = new Splitter(this.file);
      return;
    }
    for (let i = 1; i < SLOTS; i++) this.free.push(i);
    this.slot = 0;
    const worker = this.worker = startWorker(import.meta.url, { titlesLinks: { file: this.file, ring } });
    this.done = new Promise<DoneMessage>((resolve, reject) => {
      let finished = false;
      const fail = (e: Error) => {
        this.failure ??= e;
        reject(this.failure);
        const w = this.waiting;
        this.waiting = null;
        w?.(this.failure);
      };
      worker.on('message', (m: number | DoneMessage) => {
        if (typeof m !== 'number') { finished = true; resolve(m); return; }
        if (m >= 0) this.free.push(m); else this.ownInFlight = false;
        const w = this.waiting;
        if (w) { this.waiting = null; w(); }
      });
      worker.on('error', fail);
      worker.on('exit', (code) => { if (!finished) fail(new Error(`the titles ETL's list worker stopped (exit code ${code})`)); });
    });
    this.done.catch(() => {}); // reported through batch() and finish()
  }

  row(line: number, ranges: Int32Array, kinds: number) {
    if ((this.n + 1) * ROW_INTS > this.rows.length) { const r = new Int32Array(this.rows.length * 2); r.set(this.rows); this.rows = r; }
    const o = this.n++ * ROW_INTS;
    this.rows[o] = line;
    this.rows[o + 1] = kinds << 1;
    this.rows.set(ranges, o + 2);
  }

  rejectLast() { this.rows[(this.n - 1) * ROW_INTS + 1] |= 1; }

  batch(buf: Buffer, used: number, cb: (e?: Error) => void) {
    if (this.failure) { cb(this.failure); return; }
    if (this.ownInFlight) { this.waiting = (e) => (e ? cb(e) : this.batch(buf, used, cb)); return; }
    const n = this.n;
    if (n === 0) { cb(); return; }
    if (this.inline) { this.inline.rows(buf, this.rows, n); this.n = 0; cb(); return; }
    if (used > SLOT_BYTES || n > SLOT_ROWS) {
      // bigger than a slot (a huge chunk): its own buffers, transferred
      this.post();
      const bytes = new Uint8Array(used);
      bytes.set(buf.subarray(0, used));
      const rows = this.rows.slice(0, n * ROW_INTS);
      this.worker!.postMessage({ slot: -1, bytes: used, rows: n, own: { bytes, rows } } satisfies BatchMessage, [bytes.buffer, rows.buffer]);
      this.n = 0;
      this.ownInFlight = true;
      cb();
      return;
    }
    if (this.slotBytes + used > SLOT_BYTES || this.slotRows + n > SLOT_ROWS) this.post();
    if (this.slot < 0) this.slot = this.free.shift() ?? -1;
    if (this.slot < 0) { this.waiting = (e) => (e ? cb(e) : this.batch(buf, used, cb)); return; }
    // into the slot: the bytes, and the ranges moved by where they landed
    const base = this.slot * SLOT_BYTES + this.slotBytes;
    this.ringBytes.set(buf.subarray(0, used), base);
    const shift = this.slotBytes;
    const out = this.ringRows;
    let o = (this.slot * SLOT_ROWS + this.slotRows) * ROW_INTS;
    for (let p = 0; p < n * ROW_INTS; p += ROW_INTS) {
      out[o] = this.rows[p];
      out[o + 1] = this.rows[p + 1];
      for (let k = 2; k < ROW_INTS; k++) out[o + k] = this.rows[p + k] + shift;
      o += ROW_INTS;
    }
    this.slotBytes += used;
    this.slotRows += n;
    this.n = 0;
    cb();
  }

  /** Sends the slot being filled, if it holds rows (the next batch takes a free slot). */
  private post() {
    if (this.slot >= 0 && this.slotRows > 0) {
      this.worker!.postMessage({ slot: this.slot, bytes: this.slotBytes, rows: this.slotRows } satisfies BatchMessage);
      this.slot = -1;
      this.slotBytes = this.slotRows = 0;
    }
  }

  /** After the CSV stage's last batch: waits for the splitting to end, then opens the spool for reading. */
  async finish(): Promise<LinkResult> {
    if (this.n || this.waiting) throw new Error('LinkWorker.finish() before the last batch was handed over');
    let m: DoneMessage;
    if (this.inline) m = this.inline.done();
    else {
      if (!this.failure) {
        this.post();
        this.worker!.postMessage('end');
      }
      m = await this.done!;
    }
    const names = {} as Record<NameTable, NameIds>;
    for (const t of ['genres', 'countries', 'people'] as const) names[t] = NameIds.from(m.names[t]);
    this.spool = new LinkSpool(this.file, names);
    return { spool: this.spool, emptyItems: m.emptyItems, rewritten: m.rewritten };
  }

  async close() {
    this.spool?.close();
    this.inline?.spool.close();
    await this.worker?.terminate();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
