// The only module that imports `pg`. Everything else talks to PostgreSQL through createDb().
import pg from 'pg';
import { from as copyFromStdin, to as copyToStdout } from 'pg-copy-streams';
import type { Sql } from 'sql-template-tag';
import type { Writable, Readable } from 'node:stream';

// Our type parsers, given to each pool and client we create (never installed globally, so another library's pg in
// this process keeps its own):
// - int8: count(*) and bigint ids; our values stay far below 2^53, so numbers are safe and convenient;
// - numeric: metrics (ratios, averages) are read as JS numbers;
// - date stays 'YYYY-MM-DD' so no time zone can shift it.
const TEXT_PARSERS: Record<number, (v: string) => unknown> = { 20: Number, 1700: Number, 1082: (v) => v };
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    (format ?? 'text') === 'text' && TEXT_PARSERS[oid] ? TEXT_PARSERS[oid] : pg.types.getTypeParser(oid, format as any)) as typeof pg.types.getTypeParser,
};

export type Row = Record<string, any>;
/** `name`: a prepared statement the connection keeps, so PostgreSQL may reuse its plan (the same name must always
 *  carry the same text: derive it from the text). */
export type Query = Sql | string | { text: string; values?: unknown[]; name?: string };

export interface Queryable {
  query<T extends Row = Row>(q: Query, values?: unknown[]): Promise<T[]>;
  one<T extends Row = Row>(q: Query, values?: unknown[]): Promise<T | undefined>;
  /** The rows and the result's columns, known even when there are no rows (a CSV header; a query's shape from LIMIT 0):
   *  name and PostgreSQL type oid. */
  withColumns<T extends Row = Row>(q: Query, values?: unknown[]): Promise<{ rows: T[]; columns: Column[] }>;
  /** Streams rows in with COPY … FROM STDIN; resolves with the rows copied once `feed` has ended the stream. */
  copyIn(copySql: string, feed: (stream: Writable) => Promise<void>): Promise<number>;
  /** COPY … TO STDOUT as a readable stream (the caller must consume it before the next query). */
  copyOut(copySql: string): Readable;
}

export interface Column { name: string; typeId: number }

export interface TxOptions {
  readOnly?: boolean;
  /** SET LOCAL statement_timeout, sent with BEGIN in one round trip. */
  statementTimeoutMs?: number;
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** SET LOCAL plan_cache_mode = force_generic_plan (same round trip): a prepared statement is planned once per
   *  connection, never per run, even where PostgreSQL would judge a plan for the values at hand cheaper. */
  genericPlans?: boolean;
}

/** Where a readTx runs (server/db/replica.ts): the read replica, or the primary. */
export interface ReadPlace {
  replica: boolean;
  /** How far the data read is behind the primary: 0 on the primary, or on a replica that has replayed all it received. */
  lagMs: number;
  /** When behind: the commit time of the last transaction the replica replayed (the data is at least that new). */
  replayedAt: Date | null;
}

export interface ReadTxOptions extends Omit<TxOptions, 'readOnly'> {
  /** Whether fn may be run again on the primary when the replica fails while fn runs (default: yes; fn only reads). */
  restartable?: () => boolean;
}

/** Thrown inside a readTx on the replica when what it reads there is older than what the caller must answer with
 *  (a mart generation the replica has not replayed yet): the read is run again on the primary. */
export class ReplicaBehind extends Error {}

export const ON_PRIMARY: ReadPlace = Object.freeze({ replica: false, lagMs: 0, replayedAt: null });

export interface Db extends Queryable {
  readonly url: string;
  readonly pool: { totalCount: number; idleCount: number; waitingCount: number };
  tx<T>(fn: (q: Queryable) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** A READ ONLY transaction that may run on the read replica (withReplica in server/db/replica.ts): report runs. A plain
   *  Db runs it on itself. */
  readTx<T>(fn: (q: Queryable, place: ReadPlace) => Promise<T>, opts?: ReadTxOptions): Promise<T>;
  /** Set on the Db withReplica made: the replica's state (for /readyz). */
  readonly replica?: { state(): ReplicaState };
  /** A dedicated connection for the callback (advisory locks, LISTEN, cursors). */
  withClient<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** What changed since a cached value was read (see ChangeFeed). */
  readonly changes: ChangeFeed;
  close(): Promise<void>;
}

/**
 * Tells in-process caches when what they hold may have changed. Tables with a notify trigger
 * (sql/schema/0007_change_notify.sql) send NOTIFY marquee_changes '<table>' at commit; one LISTEN connection per Db,
 * opened on first use, counts them per table. A cache stores a value with the token it took *before* reading it, and
 * uses the value only while token() still returns the same: any change to those tables since — here or in another
 * process — or the feed being down (connection lost, a read-only standby) makes it read again. So the feed can make
 * a cache miss, never make it serve what a fresh read would not: at most what was true as little before as a
 * notification takes to arrive (a millisecond or so on one machine).
 */
export interface ChangeFeed {
  /** A token for the current state of these tables, or null while the feed is not live (do not cache then). */
  token(...tables: string[]): string | null;
}

export type ChangeCache<T> = Map<string, { token: string; value: T }>;

/**
 * The one way to cache through the feed: `read()` unless `cache` holds `key` under the current token of `tables` (and
 * `usable(value)`, when given, still holds); a value read is kept only if the token did not move while it was read,
 * and is not undefined. At most `max` entries (the oldest go first).
 */
export async function readThrough<T>(db: Db, cache: ChangeCache<T>, key: string, tables: string[], read: () => Promise<T>,
  opts: { usable?: (value: T) => boolean; max?: number } = {}): Promise<T> {
  const token = db.changes.token(...tables);
  const hit = cache.get(key);
  if (hit && token !== null && hit.token === token && (!opts.usable || opts.usable(hit.value))) return hit.value;
  const value = await read();
  cache.delete(key);
  if (value !== undefined && token !== null && db.changes.token(...tables) === token) {
    cache.set(key, { token, value });
    if (cache.size > (opts.max ?? 10_000)) cache.delete(cache.keys().next().value!);
  }
  return value;
}

const CHANGE_CHANNEL = 'marquee_changes';
/** Process-wide local bumps (writes through any Db of this process), folded into every feed's tokens: this process
 *  changed these tables, so its caches are stale now, before its own notification comes back. */
const localEpochs = new Map<string, number>();
export function noteLocalChange(...tables: string[]) {
  for (const t of tables) localEpochs.set(t, (localEpochs.get(t) ?? 0) + 1);
}

function createChangeFeed(url: string, onError: (e: Error) => void): ChangeFeed & { close(): Promise<void> } {
  const epochs = new Map<string, number>();
  let client: pg.Client | null = null;
  let live = false, started = false, closed = false, connection = 0;
  let retry: NodeJS.Timeout | undefined, heartbeat: NodeJS.Timeout | undefined;
  const down = () => {
    if (!live && !client) return;
    live = false;
    connection++;
    clearInterval(heartbeat);
    const c = client;
    client = null;
    c?.removeAllListeners('notification');
    void c?.end().catch(() => {});
    if (!closed) { retry = setTimeout(connect, 1000); retry.unref(); }
  };
  async function connect() {
    if (closed) return;
    // query_timeout: a heartbeat the server does not answer within 2 s means the connection is gone, even when no
    // error says so (a silently dropped network path would otherwise leave the feed "live" and deaf)
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, query_timeout: 2_000, keepAlive: true,
      application_name: 'marquee changes', types });
    client = c;
    c.on('error', (e) => { if (client === c) { onError(e); down(); } });
    c.on('end', () => { if (client === c) down(); });
    c.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL && n.payload) epochs.set(n.payload, (epochs.get(n.payload) ?? 0) + 1);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANGE_CHANNEL}`);
      if (client !== c || closed) { await c.end().catch(() => {}); return; }
      connection++; // whatever was cached before this connection heard nothing meanwhile: invalid
      live = true;
      heartbeat = setInterval(() => { c.query('SELECT 1').catch(() => { if (client === c) down(); }); }, 5_000);
      heartbeat.unref();
    } catch {
      if (client === c) down(); // e.g. a read-only standby, or the server is down: caches stay off, retried in 1 s
    }
  }
  return {
    token(...tables) {
      if (!started) { started = true; void connect(); }
      if (!live) return null;
      let t = String(connection);
      for (const x of tables) t += `:${epochs.get(x) ?? 0}.${localEpochs.get(x) ?? 0}`;
      return t;
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      live = false;
      const c = client;
      client = null;
      await c?.end().catch(() => {});
    },
  };
}

export interface ReplicaState {
  /** up: reads go to it; behind: further behind than allowed (reads go to the primary); down: unreachable, retried later */
  state: 'up' | 'behind' | 'down' | 'unknown';
  lagMs: number | null;
  /** when the state was last seen (ISO) */
  checkedAt: string | null;
  /** report reads served by the replica and by the primary instead, since start */
  reads: { replica: number; primary: number };
}

export interface DbOptions {
  max?: number;
  statementTimeoutMs?: number;
  idleInTxTimeoutMs?: number;
  applicationName?: string;
  onError?: (err: Error) => void;
  connectionTimeoutMs?: number;
}

function toConfig(q: Query, values?: unknown[]): pg.QueryConfig {
  if (typeof q === 'string') return { text: q, values: values as any[] };
  return { text: q.text, values: (q.values ?? []) as any[], ...('name' in q && q.name ? { name: q.name } : {}) };
}

function wrap(client: pg.PoolClient | pg.Client | pg.Pool): Queryable {
  const query = async <T extends Row>(q: Query, values?: unknown[]) => (await client.query(toConfig(q, values))).rows as T[];
  return {
    query,
    async withColumns<T extends Row>(q: Query, values?: unknown[]) {
      const r = await client.query(toConfig(q, values));
      return { rows: r.rows as T[], columns: r.fields.map((f) => ({ name: f.name, typeId: f.dataTypeID })) };
    },
    one: async <T extends Row>(q: Query, values?: unknown[]) => (await query<T>(q, values))[0],
    async copyIn(copySql, feed) {
      if (client instanceof pg.Pool) throw new Error('copyIn needs a dedicated client: use tx() or withClient()');
      const stream = client.query(copyFromStdin(copySql));
      const done = new Promise<number>((resolve, reject) => {
        stream.on('finish', () => resolve(Number(stream.rowCount ?? 0)));
        stream.on('error', reject);
      });
      let feedError: unknown;
      await feed(stream).catch((e) => { feedError = e; stream.destroy(e instanceof Error ? e : new Error(String(e))); });
      if (feedError) { await done.catch(() => {}); throw feedError; }
      return done;
    },
    copyOut(copySql) {
      if (client instanceof pg.Pool) throw new Error('copyOut needs a dedicated client: use tx() or withClient()');
      return client.query(copyToStdout(copySql));
    },
  };
}

export function createDb(url: string, opts: DbOptions = {}): Db {
  const statementTimeout = opts.statementTimeoutMs ?? 30_000;
  const idleInTx = opts.idleInTxTimeoutMs ?? 60_000;
  const pool = new pg.Pool({
    connectionString: url,
    types,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? 'marquee',
    options: `-c statement_timeout=${statementTimeout} -c idle_in_transaction_session_timeout=${idleInTx} -c TimeZone=UTC`,
  });
  const report = opts.onError ?? ((e: Error) => console.error(`[db] ${e.message}`));
  // A client losing its connection (restart, failover, pg_terminate_backend) must never crash the process. The pool's
  // 'error' event covers idle clients only; a checked-out client emits 'error' on itself — between queries too (a
  // held advisory lock, an open cursor) — and an unhandled 'error' event kills Node. So every client gets its own
  // listener when it is created; the query in flight (or the next one) still rejects, and the client is released as
  // broken (pg-pool destroys a client that is no longer queryable).
  const checkedOut = new WeakSet<pg.PoolClient>();
  pool.on('connect', (client) => {
    client.on('error', (err) => { if (checkedOut.has(client)) report(new Error(`connection lost while in use: ${err.message}`)); });
  });
  pool.on('acquire', (client) => checkedOut.add(client));
  pool.on('release', (_err, client) => checkedOut.delete(client));
  pool.on('error', (err) => report(new Error(`idle connection lost: ${err.message}`)));
  const base = wrap(pool);
  const changes = createChangeFeed(url, (e) => (opts.onError ?? ((x) => console.error(`[db] change feed: ${x.message}`)))(e));
  return {
    changes,
    url,
    get pool() { return { totalCount: pool.totalCount, idleCount: pool.idleCount, waitingCount: pool.waitingCount }; },
    ...base,
    async tx(fn, txOpts = {}) {
      const client = await pool.connect();
      let broken = false;
      try {
        const mode = [txOpts.isolation ? `ISOLATION LEVEL ${txOpts.isolation.toUpperCase()}` : '', txOpts.readOnly ? 'READ ONLY' : '']
          .filter(Boolean).join(' ');
        const timeout = txOpts.statementTimeoutMs === undefined ? ''
          : `; SET LOCAL statement_timeout = ${Math.max(0, Math.floor(txOpts.statementTimeoutMs))}`;
        const plans = txOpts.genericPlans ? '; SET LOCAL plan_cache_mode = force_generic_plan' : '';
        await client.query(`BEGIN ${mode}${timeout}${plans}`); // one round trip (simple protocol: no parameters)
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        try { await client.query('ROLLBACK'); } catch { broken = true; }
        throw err;
      } finally {
        client.release(broken);
      }
    },
    readTx(fn, { restartable: _, ...txOpts } = {}) {
      return this.tx((q) => fn(q, ON_PRIMARY), { ...txOpts, readOnly: true });
    },
    async withClient(fn) {
      const client = await pool.connect();
      let broken = false;
      try {
        return await fn(wrap(client));
      } catch (err) {
        broken = true; // the connection may hold session state (locks, an aborted COPY); do not reuse it
        throw err;
      } finally {
        client.release(broken);
      }
    },
    async close() { await changes.close(); await pool.end(); },
  };
}

/**
 * True when `err` means "the database cannot be reached right now", not "this request is wrong": connection refused or
 * reset, the pool found no connection in time, the server is shutting down or restarting (57P01-57P03), a connection
 * exception (08xxx), too many connections (53300). Such a request answers 503 with Retry-After (server/errors.ts).
 */
export function isDbUnavailable(err: unknown): boolean {
  for (let e: any = err, depth = 0; e && depth < 5; e = e.cause, depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (/^(57P0[123]|08...|53300)$/.test(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(code)) return true;
    if (e instanceof AggregateError && e.errors.some((x) => isDbUnavailable(x))) return true;
    const msg = typeof e.message === 'string' ? e.message : '';
    if (/timeout exceeded when trying to connect|Connection terminated|connection error and is not queryable|Client was closed and is not queryable|the database system is (starting up|shutting down|in recovery mode)/i.test(msg)) return true;
  }
  return false;
}

/** One-off connection for maintenance statements that cannot run in a pool transaction (CREATE DATABASE …). */
export async function withConnection<T>(url: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, types });
  client.on('error', () => {});
  await client.connect();
  try { return await fn(wrap(client)); } finally { await client.end().catch(() => {}); }
}

/** Quote an identifier that came from our own allowlists (database names made by the harness, mart names). */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`refusing identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** Replace the database name in a connection URL. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

export function redactUrl(url: string): string {
  try { const u = new URL(url); if (u.password) u.password = '***'; return u.toString(); } catch { return '(invalid url)'; }
}
