// npm run bench -- simulate [--scales=small,default,large]
// Wall time, rows/s written and peak RSS of the business simulator per preset, each in its own process (so peak RSS is
// that preset's) on a fresh database with the real bundled catalog. Baseline, measured in the same run: ONE plain COPY
// stream of pre-encoded watch_events rows in the simulator's format (binary, explicit ids) into the table as a big load
// finds it (secondary indexes and primary key dropped, triggers off) — PostgreSQL's ingest ceiling for the narrowest
// table on this machine right now. Rows/s = rows written ÷ wall time of the write (generation and COPY, until
// PostgreSQL holds every row); the rebuild of indexes and the bulk foreign-key verification, and the validation
// summary, are timed apart; wall s is the whole run until commit.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { benchDatabase, fmt, record, time } from './lib.ts';
import { titlesDemoStep } from '../../etl/titles/demo-step.ts';
import { BinaryCopy } from '../../server/db/copy-binary.ts';
import { runParams, type Scale } from '../../etl/simulator/params.ts';
import { runSimulation } from '../../etl/simulator/run.ts';
import { validationSummary } from '../../etl/simulator/validate.ts';

const END = '2026-11-26';
const child = process.argv.find((a) => a.startsWith('--child='))?.slice(8);

interface Result {
  name: string; users: number; rows: number; ms: number; writeMs: number; finishMs: number; waitMs: number; writerIdleMs: number;
  validateMs: number; rssMb: number; bulk: boolean; missed: number;
}

async function measure(name: string): Promise<Result> {
  const b = await benchDatabase(`sim_${name}`);
  try {
    await titlesDemoStep.load(b.db, () => {});
    if (name === 'baseline') {
      const rows = 1_000_000;
      const titles = (await b.db.query<{ id: number }>(`SELECT id FROM titles ORDER BY id`)).map((r) => r.id);
      await b.db.query(`INSERT INTO users (email, display_name, simulated) SELECT 'b' || i || '@bench.test', 'B', true FROM generate_series(1, 1000) i`);
      const users = (await b.db.query<{ id: number }>(`SELECT id FROM users WHERE simulated ORDER BY id`)).map((r) => r.id);
      const enc = new BinaryCopy();
      const t0 = Date.UTC(2026, 0, 1);
      for (let i = 0; i < rows; i++) {
        enc.row(6).int8(1 + i).int8(users[i % users.length]).int8(titles[(i * 7919) % titles.length]).timestamptz(t0 + i * 31_000)
          .int4(600 + (i % 3000)).bool(i % 2 === 1);
      }
      const chunks = enc.finish();
      const { ms } = await time(() => b.db.tx(async (q) => {
        await q.query(`SET LOCAL session_replication_role = replica`);
        for (const ix of await q.query<{ name: string }>(`SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = 'watch_events'::regclass AND NOT indisprimary`)) {
          await q.query(`DROP INDEX ${ix.name}`);
        }
        await q.query(`ALTER TABLE watch_events DROP CONSTRAINT watch_events_pkey`);
        await q.copyIn(`COPY watch_events (id, user_id, title_id, started_at, seconds_watched, completed) FROM STDIN (FORMAT binary)`, async (s) => {
          for (const c of chunks) if (!s.write(c)) await new Promise((r) => s.once('drain', r));
          s.end();
        });
      }, { statementTimeoutMs: 0 }));
      return { name, users: 0, rows, ms, writeMs: ms, finishMs: 0, waitMs: 0, writerIdleMs: 0, validateMs: 0, rssMb: process.resourceUsage().maxRSS / 1024, bulk: true, missed: 0 };
    }
    const params = runParams({ scale: name as Scale, end: END, quiet: true });
    const t0 = performance.now();
    const r = await runSimulation(b.db, params, {
      onProgress: (p) => { if (process.stderr.isTTY) process.stderr.write(`\r  ${name}: ${fmt(p.users, 0)}/${fmt(p.totalUsers, 0)} customers, ${fmt(p.rows, 0)} rows`); },
    });
    const ms = performance.now() - t0;
    if (process.stderr.isTTY) process.stderr.write('\n');
    await b.db.query('ANALYZE');
    const v = await time(() => validationSummary(b.db, r.runId));
    return { name, users: r.users, rows: r.rows, ms, writeMs: r.writeMs, finishMs: r.finishMs, waitMs: r.waitMs, writerIdleMs: r.writerIdleMs, validateMs: v.ms, rssMb: process.resourceUsage().maxRSS / 1024,
      bulk: r.bulkLoad, missed: v.result.checks.filter((c) => !c.ok).length };
  } finally {
    await b.close();
  }
}

if (child) {
  const r = await measure(child);
  console.log(`RESULT ${JSON.stringify(r)}`);
  process.exit(0);
}

const wanted = (process.argv.find((a) => a.startsWith('--scales='))?.slice(9) ?? 'small,default,large').split(',');
console.log(`simulator benchmark on ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (end date ${END})`);
const results: Result[] = [];
for (const name of ['baseline', ...wanted]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, `--child=${name}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) { console.error(`${name}: failed (exit ${r.status})\n${r.stdout}`); process.exitCode = 1; continue; }
  results.push(JSON.parse(line.slice(7)));
}
const base = results.find((r) => r.name === 'baseline');
const baseRate = base ? base.rows / (base.ms / 1000) : 0;
if (base) console.log(`baseline: one binary COPY stream of ${fmt(base.rows, 0)} watch_events rows (no indexes, triggers off): ${fmt(base.ms / 1000, 1)} s, ${fmt(baseRate, 0)} rows/s`);
console.log(`${'preset'.padEnd(8)} ${'customers'.padStart(10)} ${'rows'.padStart(12)} ${'write s'.padStart(8)} ${'rows/s'.padStart(10)} ${'÷ base'.padStart(7)} ` +
  `${'gen idle'.padStart(8)} ${'pg idle'.padStart(8)} ${'rebuild+FK s'.padStart(12)} ${'wall s'.padStart(7)} ${'rows/s wall'.padStart(11)} ${'peak RSS'.padStart(9)} ${'validate s'.padStart(10)}  summary`);
for (const r of results.filter((x) => x.name !== 'baseline')) {
  const rate = r.rows / (r.writeMs / 1000);
  const pct = (x: number) => `${Math.round((x / r.writeMs) * 100)} %`;
  console.log(`${r.name.padEnd(8)} ${fmt(r.users, 0).padStart(10)} ${fmt(r.rows, 0).padStart(12)} ${fmt(r.writeMs / 1000, 1).padStart(8)} ${fmt(rate, 0).padStart(10)} ` +
    `${(baseRate ? (rate / baseRate).toFixed(2) : '-').padStart(7)} ${pct(r.waitMs).padStart(8)} ${pct(r.writerIdleMs).padStart(8)} ${fmt(r.finishMs / 1000, 1).padStart(12)} ` +
    `${fmt(r.ms / 1000, 1).padStart(7)} ${fmt(r.rows / (r.ms / 1000), 0).padStart(11)} ${`${fmt(r.rssMb, 0)} MB`.padStart(9)} ${fmt(r.validateMs / 1000, 1).padStart(10)}  ` +
    `${r.missed ? `${r.missed} figure(s) outside tolerance` : 'all within tolerance'}${r.bulk ? '' : ', row-by-row FK checks'}`);
  record(`${r.name} (${fmt(r.users, 0)} customers): rows written per second`, rate, 'rows/s', { baseline: 'one binary COPY stream', baselineValue: baseRate || undefined });
  record(`${r.name}: wall time until commit (${fmt(r.rows, 0)} rows)`, r.ms / 1000, 's', { target: 'validation within tolerance', met: !r.missed });
}
console.log('rows/s = rows ÷ write s (generation + COPY until PostgreSQL holds every row); rebuild+FK s = indexes and constraints rebuilt, ' +
  'foreign keys verified; wall s = the whole run until commit (one transaction), rows/s wall = rows ÷ wall s; gen idle / pg idle = share of the write the generator ' +
  'waited for PostgreSQL / the connection waited for the generator');
console.log(`load average after: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
