// The business simulator against a real PostgreSQL: determinism across two fresh databases, the billing contract's
// invariants as SQL over the generated rows, the validation summary on the small preset, --reset, refusal cases.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useDatabase, createDatabase, type TestDatabase } from './helpers/db.ts';
import { insertSimulatorTitles } from './fixtures/simulate-titles.ts';
import { runParams, parseArgs, ParamError } from '../etl/simulator/params.ts';
import { runSimulation, verifyForeignKeys, SimulationError, TITLES_MISSING, type SimulationResult } from '../etl/simulator/run.ts';
import { validationSummary, formatSummary } from '../etl/simulator/validate.ts';
import type { Db } from '../server/db/index.ts';
import { BinaryCopy } from '../server/db/copy-binary.ts';

const root = path.resolve(import.meta.dirname, '..');
const t = useDatabase(test);
let second: TestDatabase;
let first: SimulationResult;
const END = '2026-11-26';
const params = (over: Parameters<typeof runParams>[0] = {}) => runParams({ scale: 'small', end: END, seed: 42, ...over });

const TABLES = ['users', 'subscriptions', 'subscription_events', 'payments', 'visits', 'watch_events'] as const;
async function fingerprint(db: Db): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of TABLES) {
    const where = table === 'users' ? 'WHERE simulated' : '';
    const r = await db.one<{ h: string; n: number }>(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) AS h, count(*)::int AS n FROM (SELECT * FROM ${table} ${where}) x`);
    out[table] = `${r!.n}:${r!.h}`;
  }
  return out;
}

const zero = async (db: Db, sql: string, what: string, values: unknown[] = []) => {
  const rows = await db.query(sql, values);
  assert.equal(rows.length, 0, `${what}: ${JSON.stringify(rows.slice(0, 3))}`);
};

let clock = 0;
test.before.each(() => { clock = performance.now(); });
test.after.each((ctx: any) => { if (process.env.SIM_TIMING) console.error(`${(performance.now() - clock).toFixed(0)} ms  ${ctx.__test__}`); });
test.before(async () => {
  second = await createDatabase({ label: 'simulate_b' });
});
test.after(async () => { await second?.drop(); });

test('without titles the simulator refuses with the loading hint and writes nothing', async () => {
  try {
    await runSimulation(t.db, params({ users: 50 }));
    assert.unreachable('ran without titles');
  } catch (e: any) {
    assert.instance(e, SimulationError);
    assert.is(e.message, TITLES_MISSING);
  }
  assert.is((await t.db.one(`SELECT count(*)::int AS n FROM users WHERE simulated`))!.n, 0);
});

test('the same seed, parameters and end date give identical tables in two fresh databases', async () => {
  await insertSimulatorTitles(t.db);
  await insertSimulatorTitles(second.db);
  [first] = await Promise.all([runSimulation(t.db, params()), runSimulation(second.db, params())]);
  assert.is(first.users, 2000);
  assert.ok(first.rowCounts.subscription_events > 10_000 && first.rowCounts.watch_events > 10_000, JSON.stringify(first.rowCounts));
  const a = await fingerprint(t.db), b = await fingerprint(second.db);
  assert.equal(a, b);
  assert.is(Number(a.users.split(':')[0]), 2000);
});

test('every subscription history follows the state machine and the contract', async () => {
  const db = t.db;
  // history starts with 'created', each event leaves from the state the previous one reached, ends in the row's status
  await zero(db, `
    SELECT * FROM (
      SELECT e.subscription_id, e.type, e.from_status, lag(e.to_status) OVER w AS prev, row_number() OVER w AS n
      FROM subscription_events e WINDOW w AS (PARTITION BY e.subscription_id ORDER BY e.at, e.id)) x
    WHERE (n = 1 AND type <> 'created') OR (n > 1 AND from_status IS DISTINCT FROM prev)`, 'broken event chains');
  await zero(db, `
    SELECT s.id FROM subscriptions s
    JOIN LATERAL (SELECT to_status, plan_id FROM subscription_events e WHERE e.subscription_id = s.id ORDER BY at DESC, id DESC LIMIT 1) l ON true
    WHERE l.to_status <> s.status OR (s.status <> 'canceled' AND l.plan_id <> s.plan_id)`, 'last event disagrees with the row');
  await zero(db, `
    SELECT e.id FROM subscription_events e JOIN plans p ON p.id = e.plan_id
    WHERE e.mrr_cents <> CASE WHEN e.to_status IN ('active', 'past_due') THEN p.monthly_cents ELSE 0 END`, 'mrr_cents off contract');
  await zero(db, `
    SELECT type, from_status, to_status FROM subscription_events GROUP BY 1, 2, 3
    HAVING NOT (
      (type = 'created' AND from_status IS NULL AND to_status = 'incomplete') OR
      (type = 'activated' AND from_status = 'incomplete' AND to_status = 'active') OR
      (type = 'expired' AND from_status = 'incomplete' AND to_status = 'canceled') OR
      (type = 'renewed' AND from_status = 'active' AND to_status = 'active') OR
      (type = 'payment_failed' AND from_status IN ('active', 'past_due') AND to_status IN ('active', 'past_due')) OR
      (type = 'past_due' AND from_status = 'active' AND to_status = 'past_due') OR
      (type = 'recovered' AND from_status = 'past_due' AND to_status = 'active') OR
      (type = 'plan_changed' AND from_status = 'active' AND to_status = 'active') OR
      (type IN ('downgrade_scheduled', 'cancel_requested', 'cancel_reverted', 'refunded') AND from_status = to_status) OR
      (type = 'canceled' AND from_status IN ('active', 'past_due') AND to_status = 'canceled'))`, 'transitions outside the contract');
  await zero(db, `
    SELECT s.id FROM subscriptions s JOIN subscription_events e ON e.subscription_id = s.id AND e.type IN ('canceled', 'expired')
    WHERE e.at <> s.ended_at OR e.data->>'reason' <> s.end_reason`, 'end event disagrees with ended_at/end_reason');
  await zero(db, `
    SELECT s.id FROM subscriptions s JOIN subscription_events e ON e.subscription_id = s.id AND e.type = 'canceled'
    WHERE s.end_reason = 'voluntary' AND (e.at <> s.current_period_end
      OR NOT EXISTS (SELECT 1 FROM subscription_events r WHERE r.subscription_id = s.id AND r.type = 'cancel_requested' AND r.at < e.at))`,
    'voluntary churn not at period end after a cancel request');
});

test('no overlapping live subscriptions, contiguous periods, no payment after cancellation, one charge per attempt', async () => {
  const db = t.db;
  await zero(db, `
    SELECT * FROM (SELECT user_id, created_at, lag(ended_at) OVER w AS prev_end, lag(status) OVER w AS prev_status
                   FROM subscriptions WINDOW w AS (PARTITION BY user_id ORDER BY created_at, id)) x
    WHERE prev_status IS NOT NULL AND (prev_status <> 'canceled' OR created_at < prev_end)`, 'overlapping subscriptions');
  await zero(db, `
    SELECT p.id FROM payments p JOIN subscriptions s ON s.id = p.subscription_id
    WHERE s.ended_at IS NOT NULL AND (p.created_at > s.ended_at OR (s.end_reason = 'voluntary' AND p.period_start >= s.ended_at))`,
    'payments after cancellation');
  await zero(db, `
    SELECT * FROM (
      SELECT subscription_id, period_start, lag(period_end) OVER w AS prev_end
      FROM (SELECT DISTINCT subscription_id, period_start, period_end FROM payments WHERE kind IN ('initial', 'renewal')) d
      WINDOW w AS (PARTITION BY subscription_id ORDER BY period_start)) x
    WHERE prev_end IS NOT NULL AND prev_end <> period_start`, 'gaps or overlaps between billed periods');
  await zero(db, `SELECT subscription_id, kind, period_start, attempt FROM payments WHERE kind <> 'proration'
    GROUP BY 1, 2, 3, 4 HAVING count(*) > 1`, 'an attempt charged twice');
  await zero(db, `
    SELECT s.id FROM subscriptions s WHERE s.status <> 'incomplete' AND s.end_reason IS DISTINCT FROM 'expired'
      AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.subscription_id = s.id AND p.kind = 'initial' AND p.status IN ('succeeded', 'refunded'))`,
    'paid subscriptions without a succeeded first payment');
  await zero(db, `SELECT id FROM payments WHERE status = 'pending' OR created_at >= $1`, 'pending or future payments', [new Date(END)]);
  // viewing only while the customer has access (an active or past-due subscription)
  await zero(db, `
    SELECT w.id FROM watch_events w WHERE NOT EXISTS (
      SELECT 1 FROM subscriptions s JOIN subscription_events a ON a.subscription_id = s.id AND a.type = 'activated'
      WHERE s.user_id = w.user_id AND a.at <= w.started_at AND w.started_at < coalesce(s.ended_at, 'infinity'))`, 'viewing without access');
});

test('MRR movements per the contract reconcile with MRR every month', async () => {
  const db = t.db;
  const window = { start: new Date(first.windowStart), end: new Date(first.windowEnd) };
  // MRR at each month start, the contract's way: latest event per subscription at or before the instant
  const totals = await db.query<{ t: Date; mrr: number }>(`
    SELECT b.t, coalesce(sum(l.mrr_cents), 0)::float8 AS mrr
    FROM generate_series(date_trunc('month', $1::timestamptz) + interval '1 month', date_trunc('month', $2::timestamptz), interval '1 month') AS b(t)
    LEFT JOIN LATERAL (SELECT DISTINCT ON (subscription_id) mrr_cents FROM subscription_events e WHERE e.at <= b.t
                       ORDER BY subscription_id, at DESC, id DESC) l ON true
    GROUP BY b.t ORDER BY b.t`, [window.start, window.end]);
  // movements per customer from per-customer MRR at consecutive month starts
  const moves = await db.query<{ t: Date; new: number; expansion: number; reactivation: number; contraction: number; churn: number }>(`
    WITH b AS (SELECT generate_series(date_trunc('month', $1::timestamptz) + interval '1 month', date_trunc('month', $2::timestamptz), interval '1 month') AS t),
    cm AS (
      SELECT b.t, c.user_id, coalesce((SELECT sum(l.mrr_cents) FROM (SELECT DISTINCT ON (e.subscription_id) e.mrr_cents FROM subscription_events e
                                       WHERE e.user_id = c.user_id AND e.at <= b.t ORDER BY e.subscription_id, e.at DESC, e.id DESC) l), 0) AS mrr
      FROM b CROSS JOIN (SELECT DISTINCT user_id FROM subscriptions) c
    ), firstpaid AS (SELECT user_id, min(at) AS at FROM subscription_events WHERE mrr_cents > 0 GROUP BY user_id),
    pairs AS (
      SELECT s.t, s.user_id, s.mrr AS m0, e.mrr AS m1, f.at AS first_paid
      FROM cm s JOIN cm e ON e.user_id = s.user_id AND e.t = s.t + interval '1 month' LEFT JOIN firstpaid f ON f.user_id = s.user_id
    )
    SELECT t,
      coalesce(sum(m1) FILTER (WHERE m0 = 0 AND m1 > 0 AND first_paid >= t), 0)::float8 AS new,
      coalesce(sum(m1) FILTER (WHERE m0 = 0 AND m1 > 0 AND first_paid < t), 0)::float8 AS reactivation,
      coalesce(sum(m1 - m0) FILTER (WHERE m0 > 0 AND m1 > m0), 0)::float8 AS expansion,
      coalesce(sum(m0 - m1) FILTER (WHERE m0 > 0 AND m1 > 0 AND m1 < m0), 0)::float8 AS contraction,
      coalesce(sum(m0) FILTER (WHERE m0 > 0 AND m1 = 0), 0)::float8 AS churn
    FROM pairs GROUP BY t ORDER BY t`, [window.start, window.end]);
  assert.is(moves.length, totals.length - 1);
  assert.ok(moves.length >= 10, `${moves.length} months`);
  for (let i = 0; i < moves.length; i++) {
    const m = moves[i];
    const expected = totals[i].mrr + m.new + m.expansion + m.reactivation - m.contraction - m.churn;
    assert.ok(Math.abs(expected - totals[i + 1].mrr) < 0.01, `month ${m.t.toISOString().slice(0, 7)}: ${totals[i].mrr} + moves = ${expected}, MRR says ${totals[i + 1].mrr}`);
    assert.ok(m.new > 0 && m.churn > 0, `month ${m.t.toISOString().slice(0, 7)} has new and churned MRR`);
  }
  assert.ok(moves.some((m) => m.reactivation > 0) && moves.some((m) => m.expansion > 0) && moves.some((m) => m.contraction > 0), 'all movement kinds occur');
});

test('the validation summary on the small preset is within tolerance of every target', async () => {
  const s = await validationSummary(t.db, first.runId);
  const text = formatSummary(s);
  assert.ok(s.checks.length >= 18, text);
  const missed = s.checks.filter((c) => !c.ok);
  assert.equal(missed.map((c) => c.metric), [], text);
  assert.match(text, /renewal first-attempt failure rate/);
});

test('viewing follows genre affinities and falls before a voluntary cancel', async () => {
  // a customer's top genre takes far more of their viewing than a uniform pick over genres would
  const aff = await t.db.one<{ top_share: number; genres: number }>(`
    WITH g AS (SELECT w.user_id, tg.genre_id, count(*) AS n FROM watch_events w JOIN title_genres tg ON tg.title_id = w.title_id GROUP BY 1, 2),
         u AS (SELECT user_id, max(n)::float8 / sum(n) AS top_share FROM g GROUP BY user_id HAVING sum(n) >= 20)
    SELECT avg(top_share) AS top_share, (SELECT count(*)::int FROM genres) AS genres FROM u`);
  assert.ok(aff!.top_share > 2.5 / aff!.genres, `top genre share ${aff!.top_share}`);
  // sessions per day in the 30 days before a voluntary cancel request vs the 60 days before that
  const drop = await t.db.one<{ before: number; late: number }>(`
    WITH c AS (SELECT e.user_id, e.at FROM subscription_events e JOIN subscriptions s ON s.id = e.subscription_id
               WHERE e.type = 'cancel_requested' AND s.end_reason = 'voluntary' AND e.at > $1::timestamptz + interval '100 days')
    SELECT (SELECT count(*) FROM watch_events w JOIN c ON c.user_id = w.user_id WHERE w.started_at >= c.at - interval '90 days' AND w.started_at < c.at - interval '45 days')::float8 / 45 AS before,
           (SELECT count(*) FROM watch_events w JOIN c ON c.user_id = w.user_id WHERE w.started_at >= c.at - interval '30 days' AND w.started_at < c.at)::float8 / 30 AS late`,
    [new Date(first.windowStart)]);
  assert.ok(drop!.late < 0.7 * drop!.before, `viewing before cancel: ${drop!.before.toFixed(1)}/day earlier, ${drop!.late.toFixed(1)}/day in the last 30 days`);
});

test('a second history is refused without --reset and nothing changes', async () => {
  const before = await fingerprint(second.db);
  try {
    await runSimulation(second.db, params({ seed: 7, users: 100 }));
    assert.unreachable('a second history was accepted');
  } catch (e: any) {
    assert.instance(e, SimulationError);
    assert.match(e.message, /already exists.*--reset/);
  }
  assert.equal(await fingerprint(second.db), before);
});

test('--reset replaces only simulated data, in one transaction', async () => {
  const db = second.db;
  const real = (await db.one<{ id: number }>(`INSERT INTO users (email, display_name) VALUES ('real@example.com', 'Real Customer') RETURNING id`))!.id;
  await db.query(`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end) VALUES ($1, 1, 'active', now(), now() + interval '1 month')`, [real]);
  await db.query(`INSERT INTO visits (visitor_id, user_id, at, path, referrer_class) VALUES (gen_random_uuid(), $1, now(), '/', 'direct')`, [real]);
  const r = await runSimulation(db, params({ seed: 7, users: 300, reset: true }));
  assert.is(r.users, 300);
  const counts = await db.one<{ sim: number; real: number; subs: number; visits: number; runs: number }>(`
    SELECT (SELECT count(*) FROM users WHERE simulated)::int AS sim, (SELECT count(*) FROM users WHERE NOT simulated)::int AS real,
           (SELECT count(*) FROM subscriptions WHERE user_id = $1)::int AS subs,
           (SELECT count(*) FROM visits WHERE NOT simulated)::int AS visits, (SELECT count(*) FROM simulation_runs)::int AS runs`, [real]);
  assert.equal(counts, { sim: 300, real: 1, subs: 1, visits: 1, runs: 1 });
  // nothing of the old history survives: every simulated row hangs off the new run's users
  const orphans = await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM subscriptions s JOIN users u ON u.id = s.user_id WHERE u.simulated AND u.email NOT LIKE '%.s7@%'`);
  assert.is(orphans!.n, 0);
});

test('a big load (indexes rebuilt after the rows) writes exactly what the row-by-row path writes', async () => {
  const third = await createDatabase({ label: 'simulate_c' });
  const fourth = await createDatabase({ label: 'simulate_d' });
  try {
    await insertSimulatorTitles(third.db);
    await insertSimulatorTitles(fourth.db);
    const indexes = `SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('subscription_events', 'payments', 'visits', 'watch_events') ORDER BY 1`;
    const before = await third.db.query(indexes);
    const [big, normal] = await Promise.all([
      runSimulation(third.db, params({ users: 300 }), { bigLoadRows: 0 }),
      runSimulation(fourth.db, params({ users: 300 })),
    ]);
    assert.ok(big.rebuiltIndexes >= 8, `${big.rebuiltIndexes} indexes rebuilt`);
    assert.is(normal.rebuiltIndexes, 0);
    assert.equal(await third.db.query(indexes), before);
    assert.equal(await fingerprint(third.db), await fingerprint(fourth.db));
  } finally {
    await third.drop();
    await fourth.drop();
  }
});

test('the bulk foreign-key check finds a dangling reference inside or outside the ranges it trusts', async () => {
  const db = second.db;
  const users = await db.one<{ lo: number; hi: number }>(`SELECT min(id)::int AS lo, max(id)::int AS hi FROM users WHERE simulated`);
  const subs = await db.one<{ lo: number; hi: number }>(`SELECT min(id)::int AS lo, max(id)::int AS hi FROM subscriptions`);
  const dense = () => ({ users: [users!.lo, users!.hi] as [number, number], subscriptions: [subs!.lo, subs!.hi] as [number, number] });
  // a consistent history passes, with the ranges and without them
  await db.tx((q) => verifyForeignKeys(q, dense(), () => {}));
  await db.tx((q) => verifyForeignKeys(q, {}, () => {}));
  const dangling = async (mutate: string, ranges: Record<string, [number, number]>, expect: RegExp) => {
    try {
      await db.tx(async (q) => {
        await q.query(`SET LOCAL session_replication_role = replica`); // as the bulk load writes: no RI triggers
        await q.query(mutate);
        await q.query(`SET LOCAL session_replication_role = origin`);
        await verifyForeignKeys(q, ranges, () => {});
      });
      assert.unreachable(`not caught: ${mutate}`);
    } catch (e: any) {
      assert.instance(e, SimulationError);
      assert.match(e.message, expect);
    }
  };
  // a reference past the trusted range is looked up
  await dangling(`UPDATE watch_events SET user_id = ${users!.hi + 1000} WHERE id = (SELECT min(id) FROM watch_events)`, dense(), /1 rows of watch_events\.user_id reference no users row/);
  // a gap inside a range claimed complete: the range is not trusted, every row is looked up
  const gap = await db.one<{ id: number }>(`SELECT user_id::int AS id FROM watch_events ORDER BY id LIMIT 1`);
  await dangling(`DELETE FROM users WHERE id = ${gap!.id}`, dense(), /reference no users row/);
  await dangling(`UPDATE payments SET subscription_id = -7 WHERE id = (SELECT max(id) FROM payments)`, dense(), /payments\.subscription_id reference no subscriptions row/);
  await dangling(`UPDATE watch_events SET title_id = -1 WHERE id = (SELECT max(id) FROM watch_events)`, dense(), /watch_events\.title_id reference no titles row/);
});

test('an interrupted run leaves nothing behind', async () => {
  const db = second.db;
  const before = await fingerprint(db);
  const indexes = `SELECT count(*)::int AS n FROM pg_indexes WHERE tablename = 'watch_events'`;
  const indexesBefore = (await db.one<{ n: number }>(indexes))!.n;
  let calls = 0;
  try {
    await runSimulation(db, params({ seed: 8, users: 600, batchSize: 100, reset: true }), {
      bigLoadRows: 0, // the dropped indexes must come back too
      onProgress: () => { if (++calls === 3) throw new Error('interrupted'); },
    });
    assert.unreachable('the run was not interrupted');
  } catch (e: any) {
    assert.is(e.message, 'interrupted');
  }
  assert.equal(await fingerprint(db), before);
  // the dropped indexes came back (as many as before the run: other features add theirs, e.g. migration 0010's)
  assert.is((await db.one<{ n: number }>(indexes))!.n, indexesBefore);
  assert.ok(indexesBefore >= 4);
});

test('the binary COPY encoder writes what the same values mean as text', async () => {
  type Case = [id: number, big: number, ms: number | null, cents: number, txt: string | null, json: string, uuid: string, small: number, flag: boolean];
  const cases: Case[] = [
    [1, -1, Date.parse('1999-12-31T23:59:59.999Z'), 0, 'plain', '{}', '00000000-0000-4000-8000-000000000000', -32768, false],
    [2, 2 ** 53 - 1, Date.parse('2026-11-26T12:34:56.789Z') + 0.9, 1234567.89, 'naïve 東京 \\ tab\there', '{"k": "é", "n": [1, 2.5]}', 'ffffffff-ffff-4fff-bfff-ffffffffffff', 32767, true],
    [3, -(2 ** 40) - 7, null, -0.5, null, '{"refund_cents": 799}', '0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0', 0, true],
    [4, 4294967296, Date.parse('1969-07-20T20:17:40.5Z'), 10000.01, '', '[]', '12345678-9abc-4def-8123-456789abcdef', 1, false],
    [5, 0, 0, 99.9, 'é'.repeat(400_000), '"s"', 'a0a0a0a0-b1b1-4c2c-9d3d-e4e4e4e4e4e4', 2, true],
  ];
  const enc = new BinaryCopy();
  for (const [id, big, ms, cents, txt, json, uuid, small, flag] of cases) {
    enc.row(9).int4(id).int8(big).nullableTimestamptz(ms).numeric(cents, 2).nullableText(txt).jsonb(json).uuid(uuid).int2(small).bool(flag);
  }
  const rows = await t.db.tx(async (q) => {
    await q.query(`CREATE TEMP TABLE enc (id integer, big bigint, at timestamptz, cents numeric(12, 2), txt text, data jsonb, u uuid, small smallint, flag boolean) ON COMMIT DROP`);
    await q.copyIn(`COPY enc FROM STDIN (FORMAT binary)`, async (stream) => { for (const c of enc.finish()) stream.write(c); stream.end(); });
    return q.query<Record<string, unknown>>(`SELECT id, big::text, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS at, cents::text, txt, data,
      u::text, small, flag FROM enc ORDER BY id`);
  });
  assert.equal(rows, cases.map(([id, big, ms, cents, txt, json, uuid, small, flag]) => ({
    id, big: String(big), at: ms === null ? null : new Date(ms).toISOString().replace('Z', '000'), cents: cents.toFixed(2), txt,
    data: JSON.parse(json), u: uuid, small, flag,
  })));
});

test('bad flags are refused with the flag named', () => {
  const cases: [string[], RegExp][] = [
    [['--users', 'many'], /--users: expected a number/],
    [['--users', '0'], /--users: must be between 1/],
    [['--months'], /--months: needs a value/],
    [['--end', '2026-02-30'], /--end: expected a date/],
    [['--scale', 'huge'], /--scale: must be small, default or large/],
    [['--renewal-failure-rate', '1.5'], /--renewal-failure-rate: must be between 0 and 1/],
    [['--colour', 'blue'], /--colour: unknown flag/],
    [['--plan-mix', 'gold=1'], /--plan-mix: unknown plan "gold"/],
    [['--plan-mix', 'standard=1'], /--plan-mix: missing plan standard_with_ads/],
    [['--profile', 'nope'], /--profile: no profile "nope"/],
    [['--seed', '1', '--seed', '2'], /--seed: given twice/],
    [['stray'], /unexpected argument "stray"/],
  ];
  for (const [args, message] of cases) {
    try {
      parseArgs(args, END);
      assert.unreachable(`accepted ${args.join(' ')}`);
    } catch (e: any) {
      assert.instance(e, ParamError, `${args.join(' ')}: ${e.message}`);
      assert.match(e.message, message);
    }
  }
  const ok = parseArgs(['--scale', 'small', '--profile', 'industry', '--renewal-failure-rate=0.2', '--plan-mix', 'standard_with_ads=0.5,standard=0.25,premium=0.25'], END);
  assert.is(ok.users, 2000);
  assert.is(ok.end, END);
  assert.is(ok.business.renewalFailureRate, 0.2);
  assert.is(ok.business.retryRecoveryRate, 0.7); // from the industry profile
  assert.is(ok.business.planMix.standard_with_ads, 0.5);
});

test('one source of defaults: --help prints etl/profiles/default.json, which is what a run without flags uses', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', '--help'], { cwd: root, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const file = JSON.parse(fs.readFileSync(path.join(root, 'etl/profiles/default.json'), 'utf8'));
  const used = parseArgs([], END).business as unknown as Record<string, unknown>;
  const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  const shown = (v: unknown) => JSON.stringify(v).replace(/"/g, '');
  for (const [k, v] of Object.entries(used)) {
    assert.equal(v, file[k], `${k}: a run uses ${shown(v)}, default.json says ${shown(file[k])}`);
    assert.ok(r.stdout.includes(`  --${kebab(k)} ${shown(v)}\n`), `--help shows --${kebab(k)} ${shown(v)}`);
  }
  assert.equal(Object.keys(used).sort(), Object.keys(file).filter((k) => k !== 'description').sort());
  assert.equal(runParams().business, parseArgs([], END).business, 'the demo step (runParams) and the CLI agree');
});

test('the CLI exits 2 on a bad flag, naming it, before touching any database', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', '--users', '10', '--months', '-3'], {
    cwd: root, encoding: 'utf8', env: { ...process.env, DATABASE_URL: t.url },
  });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /simulate: --months: must be between 1 and 60, got -3/);
  assert.match(r.stderr, /usage: npm run simulate/);
});

test('the CLI refuses a second history with exit code 1 and writes nothing', async () => {
  const before = await fingerprint(t.db);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'etl/simulate.ts', '--users', '10', '--end', '2026-11-26', '--quiet'], {
    cwd: root, encoding: 'utf8', env: { ...process.env, DATABASE_URL: t.url },
  });
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, /already exists.*pass --reset/);
  assert.equal(await fingerprint(t.db), before);
});

test.run();
