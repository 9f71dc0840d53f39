// npm run bench -- billing [--users=1000000] [--due=33000] [--concurrency=8] [--batch=500] [--payer=card|simulated]
//
// A day of renewals at the 1M-customer scale: the renewal job (billing.renewals, server/billing/jobs.ts) processes
// every subscription whose period ended in the last 24 hours (~33,000 of 1,000,000: a month's renewals spread over
// ~30 days), beside a baseline measured in the same run: the same rows the job wrote (payments, subscription events,
// charge intents, the test gateway's ledger, the updated subscriptions) written by one binary COPY per table.
//
// Synthetic setup (documented, not the simulator: `npm run simulate -- --scale large` takes very long on 2 cores):
// `--users` customers, each with one active subscription on the 55/30/15 plan mix, created a month before its period
// end, and its succeeded initial payment; `--due` of them have a period end spread evenly over the day before "now"
// (2026-11-16 00:00 UTC), the others over the next 29 days. Payers have a test-gateway card on file (`--payer=card`,
// default: every charge goes through the persistent test gateway) or are simulated customers (`--payer=simulated`:
// the simulator's model answers). No subscription_events history is generated (the job only appends to it).
import { Readable } from 'node:stream';
import sql from 'sql-template-tag';
import { benchDatabase, fmt, record, time } from './lib.ts';
import { createTestGateway } from '../../server/billing/gateway.ts';
import { runBillingSteps } from '../../server/billing/jobs.ts';

const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const USERS = Number(arg('users', '1000000'));
const DUE = Number(arg('due', '33000'));
const CONCURRENCY = Number(arg('concurrency', '8'));
const BATCH = Number(arg('batch', '500'));
const PAYER = arg('payer', 'card');
const NOW = Date.UTC(2026, 10, 16, 0, 0, 0);
const DAY = 86_400_000;

const b = await benchDatabase('billing');
const { db } = b;
try {
  console.log(`setup: ${fmt(USERS, 0)} customers, ${fmt(DUE, 0)} due in the day before ${new Date(NOW).toISOString()}, payer ${PAYER}`);
  const setup = await time(async () => {
    await db.tx(async (q) => {
      await q.query(sql`INSERT INTO users (email, display_name, role, simulated, created_at)
        SELECT 'bench-' || i || '@bench.example', 'Bench ' || i, 'subscriber', ${PAYER === 'simulated'}, ${new Date(NOW - 60 * DAY)}
        FROM generate_series(1, ${USERS}) i`);
      const { lo } = (await q.one<{ lo: number }>(sql`SELECT min(id) AS lo FROM users WHERE email LIKE 'bench-%'`))!;
      // period ends: the due ones evenly over [NOW - 1 day, NOW), the rest over the next 29 days
      await q.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, created_at, current_period_start, current_period_end, cancel_at_period_end)
        SELECT x.id, x.plan_id, 'active', x.pe - interval '1 month', x.pe - interval '1 month', x.pe, false
        FROM (SELECT u.id,
                (SELECT id FROM plans WHERE code = CASE WHEN u.id % 20 < 11 THEN 'standard_with_ads' WHEN u.id % 20 < 17 THEN 'standard' ELSE 'premium' END) AS plan_id,
                CASE WHEN u.id - ${lo} < ${DUE}
                  THEN ${new Date(NOW - DAY)}::timestamptz + (u.id - ${lo}) * (${DAY / DUE} * interval '1 millisecond')
                  ELSE ${new Date(NOW)}::timestamptz + ((u.id * 7919) % (29 * 86400)) * interval '1 second' + interval '1 second' END AS pe
              FROM users u WHERE u.id >= ${lo}) x`);
      await q.query(sql`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, currency, status,
          idempotency_key, created_at, settled_at)
        SELECT s.user_id, s.id, 'initial', s.current_period_start, s.current_period_end, 1, p.price_cents, 'USD', 'succeeded',
          'sub:' || s.id || ':period:' || to_char(s.current_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ':attempt:1',
          s.current_period_start, s.current_period_start
        FROM subscriptions s JOIN plans p ON p.id = s.plan_id`);
    });
    if (PAYER === 'card') {
      const gw = createTestGateway(db);
      const card = await gw.attachCard({ number: '4242424242424242', expMonth: 12, expYear: 2040, cvc: '123' });
      if (!card.ok) throw new Error(card.message);
      await db.query(sql`INSERT INTO payment_methods (user_id, gateway, gateway_token, brand, last4, exp_month, exp_year, updated_at)
        SELECT id, 'test', ${card.token}, 'visa', '4242', 12, 2040, ${new Date(NOW - 60 * DAY)} FROM users WHERE email LIKE 'bench-%'`);
    }
    await db.query('VACUUM ANALYZE users');
    await db.query('VACUUM ANALYZE subscriptions');
    await db.query('VACUUM ANALYZE payments');
    await db.query('VACUUM ANALYZE payment_methods');
  });
  console.log(`setup took ${fmt(setup.ms / 1000)} s`);

  const before = (await db.one<{ p: number; e: number; c: number }>(`SELECT (SELECT coalesce(max(id), 0) FROM payments) AS p,
    (SELECT coalesce(max(id), 0) FROM subscription_events) AS e, (SELECT count(*) FROM test_gateway_charges) AS c`))!;
  const gateway = createTestGateway(db);
  const run = await time(() => runBillingSteps(db, 'renewal', new Date(NOW), { gateway, concurrency: CONCURRENCY, batchSize: BATCH, budgetMs: 3_600_000 }));
  const r = run.result;
  const check = (await db.one<any>(sql`SELECT count(*) AS n, count(DISTINCT subscription_id) AS subs, count(*) FILTER (WHERE status = 'succeeded') AS ok,
      count(*) FILTER (WHERE status = 'pending') AS pending
    FROM payments WHERE id > ${before.p} AND kind = 'renewal'`))!;
  console.log(`renewal job: ${fmt(r.processed, 0)} steps in ${fmt(run.ms / 1000, 2)} s = ${fmt(r.processed / (run.ms / 1000), 0)} renewals/s `
    + `(concurrency ${CONCURRENCY}, batches of ${BATCH}); outcomes ${JSON.stringify(r.outcomes)}`);
  console.log(`check: ${check.n} renewal payments for ${check.subs} subscriptions (${check.ok} succeeded, ${check.pending} pending); `
    + `${check.n === DUE && check.subs === DUE ? 'each due subscription renewed exactly once' : 'MISMATCH'}`);

  // Baseline: the rows the job wrote, written again by one binary COPY per table into empty copies of the tables
  // (same columns, indexes and constraints but foreign keys), after reading them into memory.
  const sets: [string, string][] = [
    ['payments', `SELECT * FROM payments WHERE id > ${before.p}`],
    ['subscription_events', `SELECT * FROM subscription_events WHERE id > ${before.e}`],
    ['payment_charge_intents', `SELECT i.* FROM payment_charge_intents i WHERE i.payment_id > ${before.p}`],
    ['test_gateway_charges', `SELECT * FROM test_gateway_charges WHERE idempotency_key LIKE 'sub:%'`],
    ['subscriptions', `SELECT * FROM subscriptions WHERE current_period_start >= '${new Date(NOW - DAY).toISOString()}' AND current_period_start < '${new Date(NOW).toISOString()}'`],
  ];
  const buffers: [string, Buffer, number][] = [];
  for (const [table, select] of sets) {
    await db.query(`DROP TABLE IF EXISTS bench_copy_${table}`);
    await db.query(`CREATE TABLE bench_copy_${table} (LIKE ${table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
    const chunks: Buffer[] = [];
    await db.withClient(async (c) => { for await (const x of c.copyOut(`COPY (${select}) TO STDOUT (FORMAT binary)`)) chunks.push(x as Buffer); });
    const n = (await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM (${select}) x`))!.n;
    buffers.push([table, Buffer.concat(chunks), n]);
  }
  const copy = await time(async () => {
    for (const [table, buf] of buffers) {
      await db.withClient((c) => c.copyIn(`COPY bench_copy_${table} FROM STDIN (FORMAT binary)`, async (stream) => {
        await new Promise<void>((resolve, reject) => Readable.from([buf]).pipe(stream).on('finish', resolve).on('error', reject));
      }));
    }
  });
  const rows = buffers.reduce((a, [, , n]) => a + n, 0);
  console.log(`baseline: the same ${fmt(rows, 0)} rows (${buffers.map(([t, , n]) => `${t} ${fmt(n, 0)}`).join(', ')}) by binary COPY in ${fmt(copy.ms / 1000, 2)} s`);
  console.log(`job / COPY = ${fmt(run.ms / copy.ms, 1)}×; target ≤ 30 s for ${fmt(DUE, 0)} renewals: ${run.ms <= 30_000 ? 'met' : 'MISSED'} (${fmt(run.ms / 1000, 1)} s)`);
  record(`renewal job, ${fmt(DUE, 0)} due of ${fmt(USERS, 0)}`, run.ms / 1000, 's', { baseline: 'same rows by binary COPY', baselineValue: copy.ms / 1000 });
  // the target (33,000 renewals in ≤ 30 s) as a rate, so a smaller --due compares
  record('renewals per second', r.processed / (run.ms / 1000), '/s', { min: 1100, target: '≥ 1,100 /s (33,000 in 30 s)' });
  record('due subscriptions renewed exactly once', check.n === DUE && check.subs === DUE ? 1 : 0, 'bool', { target: '1', met: check.n === DUE && check.subs === DUE });
} finally {
  await b.close();
}
