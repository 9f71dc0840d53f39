// Generation off the main thread: this worker simulates customers batch by batch and hands each batch's encoded COPY
// buffers to the main thread (transferred, not copied), which only streams them to PostgreSQL. Node then keeps one
// core generating while PostgreSQL ingests on the other, and the connection never waits for the generator to yield.
// Flow control: the worker generates a batch only against a credit from the main thread, so memory stays bounded.
import { parentPort, workerData, type Worker } from 'node:worker_threads';
import { startWorker } from '../worker-thread.ts';
import { planBook } from '../../server/billing/machine.ts';
import { Batch, Expectations, simulateCustomer, type Context, type EventIds } from './generate.ts';

export const TABLE_KEYS = ['users', 'subscriptions', 'events', 'payments', 'visits', 'watch'] as const;
export type TableKey = (typeof TABLE_KEYS)[number];

export interface GeneratorInput {
  ctx: Omit<Context, 'book'>;
  users: number;
  batchSize: number;
  /** First subscription id and first id of each event table (reserved by the run). */
  subBase: number;
  ids: EventIds;
}

export interface BatchMessage {
  type: 'batch';
  /** Customers generated so far (this batch's end). */
  users: number;
  rows: number;
  counts: Record<TableKey, number>;
  tables: Record<TableKey, Uint8Array[]>;
}

export interface DoneMessage {
  type: 'done';
  expect: Pick<Expectations, 'hazard' | 'involuntary' | 'periods'>;
  nextSub: number;
  ids: EventIds;
  /** Time the generator stood idle waiting for PostgreSQL to take earlier batches. */
  idleMs: number;
}

async function generate(input: GeneratorInput) {
  const ctx: Context = { ...input.ctx, book: planBook(Object.values(input.ctx.plans)) };
  let credits = 0;
  let wake: (() => void) | null = null;
  parentPort!.on('message', () => { credits++; wake?.(); });
  let nextSub = input.subBase;
  const nextSubId = () => nextSub++;
  const ids = { ...input.ids };
  const expect = new Expectations();
  let idleMs = 0;
  for (let first = 0; first < input.users; first += input.batchSize) {
    if (credits === 0) {
      const t0 = performance.now();
      await new Promise<void>((r) => { wake = r; });
      wake = null;
      idleMs += performance.now() - t0;
    }
    credits--;
    const batch = new Batch(ids);
    const last = Math.min(input.users, first + input.batchSize);
    for (let i = first; i < last; i++) simulateCustomer(ctx, i, batch, nextSubId, expect);
    const tables = {} as Record<TableKey, Uint8Array[]>;
    const counts = {} as Record<TableKey, number>;
    const transfer: ArrayBuffer[] = [];
    for (const k of TABLE_KEYS) {
      counts[k] = batch[k].rows;
      tables[k] = batch[k].finish();
      for (const c of tables[k]) transfer.push(c.buffer as ArrayBuffer);
    }
    const msg: BatchMessage = { type: 'batch', users: last, rows: batch.rows, counts, tables };
    parentPort!.postMessage(msg, transfer);
  }
  const done: DoneMessage = { type: 'done', expect: { hazard: expect.hazard, involuntary: expect.involuntary, periods: expect.periods }, nextSub, ids, idleMs };
  parentPort!.postMessage(done);
  parentPort!.close();
}

if (parentPort && workerData?.simulatorGenerator) await generate(workerData.simulatorGenerator as GeneratorInput);

/**
 * The main thread's side: batches in generation order, `ahead` of them generated before the caller takes them.
 * `next()` resolves with the next batch (granting the worker one more credit) or the final message.
 */
export class Generator {
  private worker: Worker;
  private queue: (BatchMessage | DoneMessage)[] = [];
  private waiting: { resolve: (m: BatchMessage | DoneMessage) => void; reject: (e: unknown) => void } | null = null;
  private failure: unknown = null;
  private finished = false;

  constructor(input: GeneratorInput, ahead = 2) {
    const { book: _book, ...ctx } = input.ctx as Context;
    this.worker = startWorker(import.meta.url, { simulatorGenerator: { ...input, ctx } });
    this.worker.on('message', (m: BatchMessage | DoneMessage) => {
      if (m.type === 'done') this.finished = true;
      if (this.waiting) { const w = this.waiting; this.waiting = null; w.resolve(m); } else this.queue.push(m);
    });
    const fail = (e: unknown) => {
      this.failure ??= e;
      if (this.waiting) { const w = this.waiting; this.waiting = null; w.reject(this.failure); }
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => { if (!this.finished) fail(new Error(`the simulator's generator stopped (exit code ${code})`)); });
    for (let i = 0; i < ahead; i++) this.worker.postMessage('go');
  }

  next(): Promise<BatchMessage | DoneMessage> {
    const m = this.queue.shift();
    const grant = (x: BatchMessage | DoneMessage) => { if (x.type === 'batch') this.worker.postMessage('go'); return x; };
    if (m) return Promise.resolve(grant(m));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<BatchMessage | DoneMessage>((resolve, reject) => { this.waiting = { resolve, reject }; }).then(grant);
  }

  /** Stops the worker (on failure or after the final message). */
  async close() { await this.worker.terminate(); }
}
