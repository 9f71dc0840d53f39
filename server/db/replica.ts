// The read replica (DATABASE_REPLICA_URL, README "Read replica"): report runs go to a PostgreSQL streaming standby,
// everything else stays on the primary. withReplica(primary, url) is the primary Db with one method changed: readTx,
// which the report engine uses for a report's rows and CSV exports. Its query/one/tx/withClient/changes are the
// primary's, so sessions, writes, billing, jobs, mart refreshes and the change feed never touch the replica.
//
// Each readTx on the replica first asks the replica how far behind it is, in the same READ ONLY transaction as the
// read (so the data is at least as new as the answer): further behind than maxLagMs, the read runs on the primary.
// A replica that cannot be reached (refused, a 1 s connect timeout, terminated) is skipped for retryMs, then tried
// again (a circuit breaker): a request never fails because of the replica.
import { createDb, isDbUnavailable, redactUrl, ReplicaBehind, type Db, type Queryable, type ReadPlace, type ReadTxOptions,
  type ReplicaState } from './index.ts';

export interface ReplicaOptions {
  /** Further behind than this (ms), reads go to the primary (MARQUEE_REPLICA_MAX_LAG_MS). */
  maxLagMs: number;
  /** After a failure, the replica is left alone this long (ms) before it is tried again. */
  retryMs?: number;
  /** Connections to the replica (a pool of its own). */
  max?: number;
  connectionTimeoutMs?: number;
  log?: (line: string) => void;
}

// Caught up: in recovery, a WAL receiver running and everything it received replayed (an idle primary sends nothing,
// so the last replayed commit may be old while nothing is missing). Otherwise behind by the age of the last replayed
// commit. pg_stat_wal_receiver shows its pid to every role (status only to pg_read_all_stats), so the pid is asked.
// (>=: a restarted standby's receiver restarts at a segment boundary, before what was already replayed.)
const STATUS_SQL = `SELECT pg_is_in_recovery() AS recovery,
  pg_last_xact_replay_timestamp() AS replayed_at,
  (pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()) IS TRUE
    AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) AS caught_up,
  (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS behind_ms`;

interface Status { recovery: boolean; replayed_at: Date | null; caught_up: boolean; behind_ms: number | null }

/** Where the data read after this status stands. A primary (not in recovery; e.g. a promoted standby) is current. */
export function placeOf(s: Status): ReadPlace {
  if (!s.recovery || s.caught_up) return { replica: true, lagMs: 0, replayedAt: null };
  // never replayed a commit since it started: nothing tells how old its data is
  if (!s.replayed_at || s.behind_ms === null) return { replica: true, lagMs: Infinity, replayedAt: null };
  return { replica: true, lagMs: Math.max(0, Math.round(s.behind_ms)), replayedAt: s.replayed_at };
}

class TooFarBehind extends Error {}

// Errors of a read that the primary would not give: the replica has not replayed the DDL the read needs yet (a table,
// column or function a migration just added), or cancelled the read to go on replaying (a recovery conflict, once it
// waited max_standby_streaming_delay; a standby's buffer-pin deadlock). The read runs again on the primary.
const REPLICA_ONLY = new Set(['42P01', '42703', '42883', '3F000', '40001', '40P01']);
const replicaOnly = (e: any) => typeof e?.code === 'string' && REPLICA_ONLY.has(e.code) && (e.code !== '40001' || /recovery/i.test(e.message ?? ''));

export function withReplica(primary: Db, replicaUrl: string, opts: ReplicaOptions): Db {
  const log = opts.log ?? ((l: string) => console.error(l));
  const retryMs = opts.retryMs ?? 5_000;
  const replica = createDb(replicaUrl, {
    max: opts.max ?? 10, connectionTimeoutMs: opts.connectionTimeoutMs ?? 1_000, applicationName: 'marquee replica reads',
    onError: (e) => log(`[replica] ${e.message}`),
  });
  let state: ReplicaState['state'] = 'unknown';
  let lagMs: number | null = null, checkedAt: Date | null = null, downUntil = 0;
  const reads = { replica: 0, primary: 0 };
  const seen = (s: ReplicaState['state'], lag: number | null) => {
    if (s !== state && (s === 'down' || state === 'down' || state === 'unknown')) {
      log(`[replica] ${redactUrl(replicaUrl)} is ${s}${s === 'down' ? `: reports read from the primary, tried again in ${retryMs / 1000} s` : ''}`);
    }
    state = s; lagMs = lag; checkedAt = new Date();
  };
  const onPrimary = <T>(fn: (q: Queryable, place: ReadPlace) => Promise<T>, txOpts: ReadTxOptions) => {
    reads.primary++;
    return primary.readTx(fn, txOpts);
  };

  async function readTx<T>(fn: (q: Queryable, place: ReadPlace) => Promise<T>, txOpts: ReadTxOptions = {}): Promise<T> {
    if (Date.now() < downUntil) return onPrimary(fn, txOpts);
    let entered = false;
    try {
      const { restartable: _, ...rest } = txOpts;
      const result = await replica.tx(async (q) => {
        const place = placeOf((await q.one<Status>(STATUS_SQL))!);
        const lag = Number.isFinite(place.lagMs) ? place.lagMs : null;
        if (place.lagMs > opts.maxLagMs) { seen('behind', lag); throw new TooFarBehind(); }
        seen('up', lag);
        entered = true;
        return fn(q, place);
      }, { ...rest, readOnly: true });
      reads.replica++;
      return result;
    } catch (e) {
      if (e instanceof TooFarBehind || e instanceof ReplicaBehind) return onPrimary(fn, txOpts);
      if (replicaOnly(e) && (!txOpts.restartable || txOpts.restartable())) {
        log(`[replica] ${(e as Error).message} (${(e as any).code}): read again on the primary`);
        return onPrimary(fn, txOpts);
      }
      if (!isDbUnavailable(e)) throw e;
      downUntil = Date.now() + retryMs;
      seen('down', null);
      log(`[replica] read failed, using the primary: ${(e as Error).message}`);
      if (entered && txOpts.restartable && !txOpts.restartable()) throw e;
      return onPrimary(fn, txOpts);
    }
  }

  return Object.assign(Object.create(primary) as Db, {
    readTx,
    replica: {
      state: (): ReplicaState => ({
        state: Date.now() < downUntil ? 'down' : state, lagMs, checkedAt: checkedAt?.toISOString() ?? null, reads: { ...reads },
      }),
    },
    /** Closes the replica's pool only: the primary is closed by whoever opened it. */
    close: () => replica.close(),
  });
}
