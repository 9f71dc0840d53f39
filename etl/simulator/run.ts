// Orchestrates a simulator run: checks (titles loaded, no second history), calibrates signup volume, then generates
// customers in batches on a worker thread and streams them through binary COPY — everything in ONE transaction, so a
// failed or interrupted run leaves nothing behind. Memory is bounded by the batch size (at most three batches exist:
// one being written, two generated ahead).
import type { Writable } from 'node:stream';
import type { Db, Queryable } from '../../server/db/index.ts';
import { dropForBulkLoad, mayVerifyForeignKeysInBulk, verifyForeignKeys as verifyInBulk, ForeignKeyViolation, type BulkRebuild, type ForeignKey } from '../../server/db/bulk.ts';
import { ensurePartitions } from '../../server/db/partitions.ts';
import { planBook, DAY_MS, type Plan } from '../../server/billing/machine.ts';
import { cumulate } from './rng.ts';
import { PLAN_CODES, type PlanCode, type RunParams, type BusinessParams } from './params.ts';
import { COPY_COLUMNS, Expectations, simulateCustomer, STREAM_PILOT, type Catalog, type Context, type EventIds } from './generate.ts';
import { Generator, type BatchMessage, type TableKey } from './worker.ts';

export class SimulationError extends Error {}

export const TITLES_MISSING = 'load titles first: npm run etl -- <file>';

export interface Progress { users: number; totalUsers: number; rows: number; elapsedMs: number }

export interface SimulationResult {
  runId: number;
  windowStart: string;
  windowEnd: string;
  users: number;
  baseCustomers: number;
  rowCounts: Record<string, number>;
  rows: number;
  /** Wall time of the whole run until the commit (checks, load, index rebuild, verification). */
  generateMs: number;
  /** Wall time of the load: from the first batch requested until PostgreSQL holds every row (no rebuild yet). */
  writeMs: number;
  /** Wall time of rebuilding the dropped indexes and constraints, and of verifying foreign keys in bulk. */
  finishMs: number;
  /** Time generation stood still waiting for PostgreSQL to take earlier batches. */
  waitMs: number;
  /** Time the connection stood idle waiting for the generator's next batch. */
  writerIdleMs: number;
  /** Whether row-by-row trigger checks were replaced by the bulk foreign-key verification. */
  bulkLoad: boolean;
  /** Indexes (primary and unique keys included) dropped for the load and rebuilt before commit (0: updated row by row). */
  rebuiltIndexes: number;
  expected: Record<string, unknown>;
}

export function windowOf(p: Pick<RunParams, 'end' | 'months'>): { start: number; end: number } {
  const end = Date.parse(p.end + 'T00:00:00Z');
  const d = new Date(end);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - p.months, d.getUTCDate());
  return { start, end };
}

async function loadPlans(db: Queryable): Promise<Record<PlanCode, Plan>> {
  const rows = await db.query<{ id: number; code: string; price_cents: number; billing_interval: 'month' | 'year'; monthly_cents: number }>(
    `SELECT id, code, price_cents, billing_interval, monthly_cents FROM plans WHERE code = ANY($1)`, [PLAN_CODES as unknown as string[]]);
  const out = {} as Record<PlanCode, Plan>;
  for (const code of PLAN_CODES) {
    const r = rows.find((x) => x.code === code);
    if (!r) throw new SimulationError(`plan ${code} is missing from the plans table (the simulator needs ${PLAN_CODES.join(', ')})`);
    if (r.billing_interval !== 'month') throw new SimulationError(`plan ${code} must be billed monthly for the simulator`);
    out[code] = { id: r.id, code: r.code, priceCents: r.price_cents, interval: r.billing_interval, monthlyCents: Number(r.monthly_cents) };
  }
  return out;
}

export async function loadCatalog(db: Queryable): Promise<Catalog> {
  const titles = await db.query<{ id: number; type: string; duration_minutes: number | null }>(
    `SELECT id, type, duration_minutes FROM titles ORDER BY release_year DESC NULLS LAST, id`);
  if (!titles.length) throw new SimulationError(TITLES_MISSING);
  const links = await db.query<{ genre_id: number; title_id: number }>(`SELECT genre_id, title_id FROM title_genres ORDER BY genre_id, title_id`);
  const index = new Map(titles.map((t, i) => [t.id, i]));
  const byGenre = new Map<number, number[]>();
  for (const l of links) {
    const i = index.get(l.title_id);
    if (i === undefined) continue;
    let list = byGenre.get(l.genre_id);
    if (!list) byGenre.set(l.genre_id, (list = []));
    list.push(i);
  }
  // titles without a genre still get watched, through one catch-all group
  let genreTitles = [...byGenre.keys()].sort((a, b) => a - b).map((g) => byGenre.get(g)!.sort((a, b) => a - b));
  if (!genreTitles.length) genreTitles = [titles.map((_, i) => i)];
  return {
    titleIds: titles.map((t) => t.id),
    isMovie: titles.map((t) => t.type === 'Movie'),
    durationMin: titles.map((t) => t.duration_minutes ?? 0),
    genreTitles,
    genreCumulative: cumulate(genreTitles.map((l) => Math.sqrt(l.length))),
  };
}

/** Share f and mean delay of returns such that f·(1−e^(−3λ)) = r3 and f·(1−e^(−12λ)) = r12. */
export function returnModel(b: BusinessParams): { share: number; meanMonths: number } {
  if (b.returnWithin3Months <= 0) return { share: 0, meanMonths: 1 };
  const rho = b.returnWithin3Months / b.returnWithin12Months; // = 1 / (1 + x + x² + x³) with x = e^(−3λ)
  let lo = 1e-9, hi = 1 - 1e-9;
  for (let k = 0; k < 60; k++) {
    const x = (lo + hi) / 2;
    if (1 / (1 + x + x * x + x * x * x) > rho) lo = x; else hi = x;
  }
  const x = (lo + hi) / 2;
  const lambda = -Math.log(x) / 3;
  // returners whose first charge fails for good never come back, so ask a few more to return
  const lost = b.initialFailureRate * (1 - b.initialRetrySuccess);
  return { share: Math.min(1, b.returnWithin3Months / (1 - x) / (1 - lost)), meanMonths: 1 / lambda };
}

export async function buildContext(db: Queryable, p: RunParams, userIdBase: number): Promise<Context> {
  const plans = await loadPlans(db);
  const catalog = await loadCatalog(db);
  const b = p.business;
  const win = windowOf(p);
  const days = Math.round((win.end - win.start) / DAY_MS);
  const weights: number[] = [];
  for (let d = 0; d < days; d++) {
    const m = new Date(win.start + d * DAY_MS).getUTCMonth();
    weights.push((m >= 9 ? b.q4SignupMultiplier : 1) * Math.pow(1 + b.yearlyGrowth, d / 365));
  }
  const ret = returnModel(b);
  const tiers = [...PLAN_CODES].map((c) => plans[c]).sort((x, y) => x.monthlyCents - y.monthlyCents);
  return {
    seed: p.seed, b, windowStart: win.start, windowEnd: win.end, plans, tiers, book: planBook(Object.values(plans)),
    planMixCumulative: cumulate(PLAN_CODES.map((c) => b.planMix[c])),
    baseCustomers: 0, signupCustomers: p.users, signupCdf: cumulate(weights),
    returnShare: ret.share, returnMeanMs: ret.meanMonths * 30.436875 * DAY_MS,
    retrySuccess: 1 - Math.pow(1 - b.retryRecoveryRate, 1 / 4),
    catalog, userIdBase,
  };
}

/**
 * How many customers already subscribe when the window opens, so that active customers grow by `yearlyGrowth` over
 * the window. A deterministic pilot (billing only, its own random streams) measures the share of base customers and
 * of new signups still active at the end (b, n); with a base share f the growth is b + n·(1/f − 1), solved for f.
 */
export function calibrateBaseShare(ctx: Context, months: number, pilotSize = 4000): number {
  const target = Math.pow(1 + ctx.b.yearlyGrowth, months / 12);
  const base = pilotSize / 2;
  const c: Context = { ...ctx, baseCustomers: base, signupCustomers: pilotSize - base };
  let sub = 0, baseActive = 0, newActive = 0;
  for (let i = 0; i < pilotSize; i++) {
    if (simulateCustomer(c, i, null, () => ++sub, null, STREAM_PILOT).activeAtEnd) { if (i < base) baseActive++; else newActive++; }
  }
  const bs = baseActive / base, ns = newActive / (pilotSize - base);
  if (ns <= 0) return 0.98;
  const f = ns / (target - bs + ns);
  return Math.min(0.98, Math.max(0.02, f));
}

function feed(chunks: Uint8Array[]) {
  return async (stream: Writable) => {
    for (const c of chunks) stream.write(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    stream.end();
  };
}

/** Where each batch table goes, in writing order (users and subscriptions first: the others reference them). */
const BATCH_TABLES: [TableKey, keyof typeof COPY_COLUMNS][] = [
  ['users', 'users'], ['subscriptions', 'subscriptions'], ['events', 'subscription_events'],
  ['payments', 'payments'], ['visits', 'visits'], ['watch', 'watch_events'],
];

/** Writes one batch, one binary COPY per table on the transaction's connection (COPY takes the explicit ids as given). */
async function writeBatch(q: Queryable, batch: BatchMessage): Promise<void> {
  for (const [key, table] of BATCH_TABLES) {
    if (!batch.counts[key]) continue;
    await q.copyIn(`COPY ${table} (${COPY_COLUMNS[table]}) FROM STDIN (FORMAT binary)`, feed(batch.tables[key]));
  }
}

// The foreign keys of the tables the simulator writes. Checking them row by row (RI triggers) costs more than writing
// the rows, so when allowed the load runs with triggers off and then verifies every one of them in bulk
// (server/db/bulk.ts) before committing — the same guarantee, one set-based pass.
const FOREIGN_KEYS: ForeignKey[] = [
  ['subscriptions', 'user_id', 'users'], ['subscriptions', 'plan_id', 'plans'], ['subscriptions', 'pending_plan_id', 'plans'],
  ['subscription_events', 'subscription_id', 'subscriptions'], ['subscription_events', 'user_id', 'users'], ['subscription_events', 'plan_id', 'plans'],
  ['payments', 'user_id', 'users'], ['payments', 'subscription_id', 'subscriptions'],
  ['visits', 'user_id', 'users'], ['watch_events', 'user_id', 'users'], ['watch_events', 'title_id', 'titles'],
];
const WRITTEN_TABLES = ['users', 'subscriptions', 'subscription_events', 'payments', 'visits', 'watch_events'];

/** Every foreign key above over all rows (bulk.ts); users and subscriptions of this run have consecutive ids. */
export async function verifyForeignKeys(q: Queryable, ranges: Record<string, [lo: number, hi: number]>, log: (l: string) => void) {
  try {
    await verifyInBulk(q, FOREIGN_KEYS, ranges, log);
  } catch (e) {
    if (e instanceof ForeignKeyViolation) throw new SimulationError(`${e.message}: nothing was written`);
    throw e;
  }
}

const ROWS_PER_CUSTOMER_ESTIMATE = 80;
const BIG_LOAD_ROWS = 2_000_000;
const EVENT_TABLES = ['subscription_events', 'payments', 'visits', 'watch_events'];

/**
 * A load that writes millions of rows and at least as many as the event tables hold is faster with their indexes
 * built once, by sorting, at the end than updated row by row — the primary keys and the unique payment key included
 * (a B-tree insert per row costs PostgreSQL more than the row itself). Indexes that a foreign key relies on stay.
 * The recipe is server/db/bulk.ts (shared with the titles ETL); the rebuild re-checks uniqueness over all rows.
 */
async function dropIndexesForBigLoad(q: Queryable, rows: number, threshold: number): Promise<BulkRebuild | null> {
  if (rows < threshold) return null;
  // a partitioned table's rows are its partitions' (its own reltuples says nothing)
  const held = await q.one<{ n: number }>(`SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 AS n
    FROM unnest($1::text[]) AS t, pg_partition_tree(t::regclass) p JOIN pg_class c ON c.oid = p.relid WHERE p.isleaf`, [EVENT_TABLES]);
  if (held!.n > rows) return null;
  return dropForBulkLoad(q, EVENT_TABLES, { foreignKeys: false }); // their foreign keys are skipped and verified below
}

/** Deletes every simulated row: simulated users and everything hanging off them, simulated visits, run records. */
export async function removeSimulated(q: Queryable): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const del = async (table: string, text: string) => {
    const r = await q.one<{ n: number }>(`WITH d AS (${text} RETURNING 1) SELECT count(*)::int AS n FROM d`);
    counts[table] = r?.n ?? 0;
  };
  await del('watch_events', `DELETE FROM watch_events w USING users u WHERE u.id = w.user_id AND u.simulated`);
  await del('payments', `DELETE FROM payments p USING users u WHERE u.id = p.user_id AND u.simulated`);
  await del('subscription_events', `DELETE FROM subscription_events e USING users u WHERE u.id = e.user_id AND u.simulated`);
  await del('subscriptions', `DELETE FROM subscriptions s USING users u WHERE u.id = s.user_id AND u.simulated`);
  await del('visits', `DELETE FROM visits v WHERE v.simulated OR v.user_id IN (SELECT id FROM users WHERE simulated)`);
  await del('users', `DELETE FROM users WHERE simulated`);
  await q.query(`DELETE FROM simulation_runs`);
  return counts;
}

export async function hasSimulatedHistory(q: Queryable): Promise<boolean> {
  return !!(await q.one(`SELECT 1 FROM users WHERE simulated LIMIT 1`)) || !!(await q.one(`SELECT 1 FROM visits WHERE simulated LIMIT 1`));
}

async function historyExists(q: Queryable): Promise<SimulationError> {
  const run = await q.one<{ id: number; seed: number; window_end: Date }>(`SELECT id, seed, window_end FROM simulation_runs ORDER BY id DESC LIMIT 1`);
  return new SimulationError(`a simulated history already exists${run ? ` (run ${run.id}, seed ${run.seed}, ending ${run.window_end.toISOString().slice(0, 10)})` : ''}; pass --reset to replace it`);
}

export async function runSimulation(db: Db, p: RunParams, opts: {
  log?: (line: string) => void;
  onProgress?: (p: Progress) => void;
  /** Estimated rows from which secondary indexes are rebuilt after the load (default 2M; tests lower it). */
  bigLoadRows?: number;
} = {}): Promise<SimulationResult> {
  const log = opts.log ?? (() => {});
  const started = performance.now();
  // fail fast, before any transaction: titles and plans are required, and a second history needs --reset
  const probe = await buildContext(db, p, 1);
  if (!p.reset && await hasSimulatedHistory(db)) throw await historyExists(db);
  const win = windowOf(p);
  const baseShare = calibrateBaseShare(probe, p.months);
  const baseCustomers = Math.round(p.users * baseShare);

  return db.tx(async (q) => {
    // Nobody else inserts into the tables we write while we pick their ids (reads go on); a concurrent run waits here.
    await q.query(`LOCK TABLE ${WRITTEN_TABLES.join(', ')} IN EXCLUSIVE MODE`);
    if (p.reset) {
      const removed = await removeSimulated(q); // with every trigger on: cascades (sessions …) and checks apply
      log(`reset: removed ${Object.entries(removed).map(([k, v]) => `${v.toLocaleString('en-US')} ${k}`).join(', ')}`);
    } else if (await hasSimulatedHistory(q)) {
      throw await historyExists(q); // another run committed meanwhile
    }
    // every month the run writes has its partitions before the first row (base customers' current periods began up
    // to a month before the window): no row lands in DEFAULT
    const created = await ensurePartitions(q, new Date(win.start - 31 * DAY_MS), new Date(win.end));
    if (created.length) log(`partitions: ${created.length} monthly partitions created for the window`);
    const bulk = await mayVerifyForeignKeysInBulk(q, WRITTEN_TABLES, FOREIGN_KEYS);
    if (bulk) {
      await q.query(`SET LOCAL session_replication_role = replica`);
      // the skipped watch_events and subscriptions triggers would have said this (past 100 users): every cached shelf
      // and access is dropped at commit
      await q.query(`SELECT pg_notify('marquee_changes', 'watch_events'), pg_notify('marquee_changes', 'subscriptions')`);
    }
    const rebuild = await dropIndexesForBigLoad(q, p.users * ROWS_PER_CUSTOMER_ESTIMATE, opts.bigLoadRows ?? BIG_LOAD_ROWS);
    if (rebuild) log(`big load: ${rebuild.dropped} indexes dropped, rebuilt after the rows are in`);
    // ids come from the run, not per row from the sequences: the first of each here, the sequences moved past the last
    const firstIds = (await q.one<Record<string, number>>(`SELECT ${WRITTEN_TABLES.map((t) => `nextval(pg_get_serial_sequence('${t}', 'id')) AS ${t}`).join(', ')}`))!;
    const userBase = firstIds.users, subBase = firstIds.subscriptions;
    const ctx: Context = { ...probe, userIdBase: userBase, baseCustomers, signupCustomers: p.users - baseCustomers };
    const { business, ...runFlags } = p;
    const run = (await q.one<{ id: number }>(
      `INSERT INTO simulation_runs (seed, profile, params, window_start, window_end, users) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [p.seed, p.profile, JSON.stringify({ ...runFlags, business, baseCustomers }), new Date(win.start), new Date(win.end), p.users]))!.id;

    const ids: EventIds = { subscription_events: firstIds.subscription_events, payments: firstIds.payments, visits: firstIds.visits, watch_events: firstIds.watch_events };
    const counts: Record<string, number> = { users: 0, subscriptions: 0, subscription_events: 0, payments: 0, visits: 0, watch_events: 0 };
    // The worker generates the next batches while this thread streams the current one: node and PostgreSQL each keep
    // a core busy, and the connection never waits on generation to yield.
    const writeStart = performance.now();
    const gen = new Generator({ ctx, users: p.users, batchSize: p.batchSize, subBase, ids });
    let rows = 0, writerIdleMs = 0;
    let done;
    try {
      for (;;) {
        const w0 = performance.now();
        const m = await gen.next();
        writerIdleMs += performance.now() - w0;
        if (m.type === 'done') { done = m; break; }
        await writeBatch(q, m);
        for (const [key, table] of BATCH_TABLES) counts[table] += m.counts[key];
        rows += m.rows;
        opts.onProgress?.({ users: m.users, totalUsers: p.users, rows, elapsedMs: performance.now() - writeStart });
      }
    } finally {
      await gen.close();
    }
    const writeMs = performance.now() - writeStart;
    const expect = Object.assign(new Expectations(), done.expect);
    const f0 = performance.now();
    if (rebuild) {
      log(`rebuilding ${rebuild.dropped} indexes and keys (steps of a second or more listed)…`);
      await rebuild.rebuild(log);
    }
    if (bulk) {
      await q.query(`SET LOCAL session_replication_role = origin`);
      log('verifying foreign keys (checks of a second or more listed)…');
      await verifyForeignKeys(q, { users: [userBase, userBase + p.users - 1], subscriptions: [subBase, done.nextSub - 1] }, log);
    }
    const finishMs = performance.now() - f0;
    // hand the sequences past the ids we chose, so later inserts continue after them (is_called false: none used)
    const next: Record<string, number> = { users: userBase + p.users, subscriptions: done.nextSub, ...done.ids };
    for (const t of WRITTEN_TABLES) {
      await q.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), $2, $3)`, next[t] > firstIds[t] ? [t, next[t] - 1, true] : [t, firstIds[t], false]);
    }
    // Statistics before anyone reads the rows: autovacuum analyzes new partitions only later and the partitioned parents
    // (whose statistics plan joins across months) never; this transaction's are visible at its commit.
    await q.query(`ANALYZE ${WRITTEN_TABLES.join(', ')}`);
    const expected: Record<string, unknown> = {
      voluntaryChurn: Object.fromEntries(PLAN_CODES.map((c) => [c, expect.voluntary(c)])),
      involuntaryChurn: Object.fromEntries(PLAN_CODES.map((c) => [c, expect.involuntaryRate(c)])),
      baseShare, returnShare: ctx.returnShare, returnMeanMonths: ctx.returnMeanMs / (30.436875 * DAY_MS),
    };
    await q.query(`UPDATE simulation_runs SET finished_at = clock_timestamp(), row_counts = $2, expected = $3 WHERE id = $1`,
      [run, JSON.stringify(counts), JSON.stringify(expected)]);
    return {
      runId: run, windowStart: new Date(win.start).toISOString(), windowEnd: new Date(win.end).toISOString(), users: p.users,
      baseCustomers, rowCounts: counts, rows, generateMs: performance.now() - started, writeMs, finishMs, waitMs: done.idleMs, writerIdleMs,
      bulkLoad: bulk, rebuiltIndexes: rebuild?.dropped ?? 0, expected,
    };
  }, { statementTimeoutMs: 0 });
}
