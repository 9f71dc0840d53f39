// npm run bench -- replica [--runs=100] [--rows=20000]
// What routing a report run to the read replica costs per run (the lag and generation check in its transaction): the
// same uncached report run on the primary directly, through withReplica onto a streaming standby, and through
// withReplica while the replica is stopped (the breaker sends it straight to the primary) — a small live report, a
// heavier live aggregate and a mart-backed one, with ratios against the primary measured interleaved with them (run by
// run, so a loaded machine slows both alike). The pair is built as in
// test/replica.test.ts (test/helpers/replica-pair.ts: the PostgreSQL 15 tools) in a temporary directory.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDb, withConnection, withDatabase, type Db } from '../../server/db/index.ts';
import { withReplica } from '../../server/db/replica.ts';
import { migrate } from '../../server/db/migrate.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport } from '../../server/reports/engine.ts';
import { startReplicaPair, replicaPairUnavailable } from '../helpers/replica-pair.ts';
import { fmt, record } from './lib.ts';

const flag = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const runs = Number(flag('runs', '100'));
const rows = Number(flag('rows', '20000'));

const why = replicaPairUnavailable();
if (why) { console.log(`bench replica: skipped: ${why}`); record(`skipped: ${why}`, 0, ''); process.exit(0); }

const FILES: Record<string, string> = {
  'marts/mart_b_total.sql': `-- @mart mart_b_total\n-- @unique k\n-- @refresh 0 3 * * *\nSELECT k % 100 AS k, sum(amount)::bigint AS total FROM b_source GROUP BY 1`,
  'b_small.sql': `-- @title Small (live)\n-- @chart kpi value=n\nSELECT count(*)::int AS n FROM b_source WHERE k < 10`,
  'b_aggregate.sql': `-- @title Aggregate (live)\n-- @chart bar x=g:Q y=total:Q\nSELECT k % 50 AS g, sum(amount)::bigint AS total FROM b_source GROUP BY 1 ORDER BY 1`,
  'b_mart.sql': `-- @title Mart\n-- @chart bar x=k:Q y=total:Q\nSELECT k, total FROM mart_b_total ORDER BY k`,
};

const pair = await startReplicaPair();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-bench-replica-'));
const dbs: Db[] = [];
try {
  await withConnection(pair.primaryUrl, (c) => c.query('CREATE DATABASE marquee'));
  const primary = createDb(withDatabase(pair.primaryUrl, 'marquee'), { max: 4 });
  dbs.push(primary);
  await migrate(primary);
  await primary.query(`CREATE TABLE b_source (k int PRIMARY KEY, amount int NOT NULL);
    INSERT INTO b_source SELECT g, g % 997 FROM generate_series(1, ${rows}) g; ANALYZE b_source`);
  for (const [f, text] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text + '\n');
  }
  const catalog = loadCatalog(dir);
  await ensureMarts(primary, catalog);
  await refreshMarts(primary, catalog);
  const replicaUrl = withDatabase(pair.replicaUrl, 'marquee');
  const direct = createDb(replicaUrl, { max: 1, onError: () => {} });
  dbs.push(direct);
  const lsn = (await primary.one('SELECT pg_current_wal_lsn()::text AS l'))!.l;
  for (;;) {
    const ok = await direct.one('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]).catch(() => null);
    if (ok?.ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const routed = withReplica(primary, replicaUrl, { maxLagMs: 30_000, max: 4, log: () => {} });
  dbs.push(routed);

  type Stat = { p50: number; p99: number };
  const stat = (times: number[]): Stat => {
    times.sort((a, b) => a - b);
    return { p50: times[Math.floor(times.length / 2)], p99: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] };
  };
  const once = async (db: Db, id: string) => {
    const t0 = performance.now();
    await runReport(db, catalog, id, new URLSearchParams(), { role: 'admin', now: new Date(), cache: null });
    return performance.now() - t0;
  };
  /** `runs` runs of each, alternating which goes first: [primary, routed] */
  const paired = async (id: string): Promise<[Stat, Stat]> => {
    const a: number[] = [], b: number[] = [];
    for (let i = 0; i < runs; i++) {
      if (i % 2) { a.push(await once(primary, id)); b.push(await once(routed, id)); } else { b.push(await once(routed, id)); a.push(await once(primary, id)); }
    }
    return [stat(a), stat(b)];
  };
  const ids = ['b_small', 'b_aggregate', 'b_mart'];
  console.log(`bench replica: ${runs} sequential uncached runs each, ${fmt(rows, 0)} source rows; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const results: Record<string, Record<string, Stat>> = {};
  for (const id of ids) {
    await once(primary, id); await once(routed, id); // warm both pools
    const [p, r] = await paired(id);
    results[id] = { primary: p, replica: r };
  }
  if (routed.replica!.state().reads.primary > 0) console.log('  note: some routed runs fell back to the primary');
  pair.stopReplica();
  await runReport(routed, catalog, 'b_small', new URLSearchParams(), { role: 'admin', now: new Date(), cache: null }); // trips the breaker
  // the breaker tries the replica again every 5 s (connection refused: immediate), so a few runs do
  for (const id of ids) [results[id].primaryDown, results[id].down] = await paired(id);
  const cell = (x: Stat) => `${fmt(x.p50, 2)} / ${fmt(x.p99, 2)}`;
  console.log('  report        replica up: primary p50/p99 ms, via replica (p50 ratio)   replica down: primary, via withReplica (p50 ratio)');
  for (const id of ids) {
    const r = results[id];
    console.log(`  ${id.padEnd(12)}  ${`${cell(r.primary)}, ${cell(r.replica)} (${fmt(r.replica.p50 / r.primary.p50, 2)}×)`.padEnd(56)}  ` +
      `${cell(r.primaryDown)}, ${cell(r.down)} (${fmt(r.down.p50 / r.primaryDown.p50, 2)}×)`);
    record(`${id} via replica p50`, r.replica.p50, 'ms', { baseline: 'same report on the primary, p50', baselineValue: r.primary.p50 });
    record(`${id} replica down p50`, r.down.p50, 'ms', { baseline: 'same report on the primary, p50', baselineValue: r.primaryDown.p50 });
  }
} finally {
  for (const db of dbs.reverse()) await db.close().catch(() => {});
  pair.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
