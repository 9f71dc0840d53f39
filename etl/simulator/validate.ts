// The validation summary: every figure measured with SQL over the simulated rows in the database (per the billing
// contract's definitions), shown beside the target it should be near. The tolerance says how near is "near" for the
// history's size; `ok` is false when a figure misses — the tests hold the small preset to these tolerances.
import type { Queryable } from '../../server/db/index.ts';
import { PLAN_CODES, type BusinessParams, type PlanCode } from './params.ts';

export interface Check {
  metric: string;
  measured: number | null;
  target: number;
  /** Allowed absolute distance from target (same unit). */
  tolerance: number;
  unit: '%' | 'x' | 'n';
  ok: boolean;
  note?: string;
  sample: number;
}

export interface Summary { checks: Check[]; months: number; activeStart: number; activeEnd: number }

const pct = (x: number | null) => (x === null ? 'n/a' : `${(x * 100).toFixed(2)} %`);

/** Full calendar months inside [start, end): their first instants, plus the boundary after the last one. */
function monthBoundaries(start: Date, end: Date): { first: Date; last: Date; months: number } {
  const first = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + (start.getUTCDate() === 1 && start.getUTCHours() === 0 ? 0 : 1), 1));
  const last = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), 1));
  const months = (last.getUTCFullYear() - first.getUTCFullYear()) * 12 + last.getUTCMonth() - first.getUTCMonth();
  return { first, last, months };
}

/** Tolerance for a rate measured on n trials: 3 standard errors, plus a model allowance. */
const tol = (p: number, n: number, floor: number) => Math.max(floor, 3 * Math.sqrt(Math.max(p * (1 - p), 1e-6) / Math.max(n, 1)));

export async function validationSummary(q: Queryable, runId?: number): Promise<Summary> {
  const run = await q.one<{ id: number; params: any; expected: any; window_start: Date; window_end: Date }>(
    `SELECT id, params, expected, window_start, window_end FROM simulation_runs ${runId ? 'WHERE id = $1' : ''} ORDER BY id DESC LIMIT 1`,
    runId ? [runId] : []);
  if (!run) throw new Error('no simulation run recorded: run npm run simulate first');
  const b: BusinessParams = run.params.business;
  const W0 = run.window_start, W1 = run.window_end;
  const { first, last, months } = monthBoundaries(W0, W1);
  const checks: Check[] = [];
  const add = (c: Omit<Check, 'ok'>) => checks.push({ ...c, ok: c.measured !== null && Math.abs(c.measured - c.target) <= c.tolerance });

  // ── churn by plan, counted as the reports count it (README "Metrics"): customers paying at a month's start (MRR at the
  // boundary from the events' [at, next at) intervals) whose subscription ended in the month — also those who came
  // back before the month was out: every churn is a churn, as in the model, which draws a churn per period
  const churn = await q.query<{ plan: PlanCode; active: number; vol: number; invol: number }>(`
    WITH ev AS (
      SELECT e.user_id, e.at, e.mrr_cents, e.plan_id,
             lead(e.at) OVER (PARTITION BY e.subscription_id ORDER BY e.at, e.id) AS next_at
      FROM subscription_events e JOIN users u ON u.id = e.user_id AND u.simulated
    ), cb AS (
      SELECT t, ev.user_id, sum(ev.mrr_cents) AS mrr, max(ev.plan_id) AS plan_id
      FROM ev CROSS JOIN LATERAL generate_series(
             greatest(date_trunc('month', ev.at + interval '1 month' - interval '1 microsecond'), $1::timestamptz),
             least(coalesce(ev.next_at, 'infinity'::timestamptz) - interval '1 microsecond', $2::timestamptz),
             interval '1 month') AS t
      WHERE ev.mrr_cents > 0
      GROUP BY 1, 2
    ), ends AS (
      SELECT DISTINCT ON (user_id, m) user_id, m, end_reason
      FROM (SELECT s.user_id, date_trunc('month', s.ended_at - interval '1 microsecond') AS m, s.end_reason, s.ended_at
            FROM subscriptions s JOIN users u ON u.id = s.user_id AND u.simulated
            WHERE s.ended_at > $1 AND s.ended_at <= $2) x
      ORDER BY user_id, m, ended_at DESC
    )
    SELECT p.code AS plan, count(*)::int AS active,
           count(*) FILTER (WHERE en.end_reason = 'voluntary')::int AS vol,
           count(*) FILTER (WHERE en.end_reason = 'involuntary')::int AS invol
    FROM cb s
    JOIN plans p ON p.id = s.plan_id
    LEFT JOIN ends en ON en.user_id = s.user_id AND en.m = s.t
    WHERE s.t < $2
    GROUP BY p.code`, [first, last]);
  const expVol = run.expected.voluntaryChurn ?? {};
  let totActive = 0, totVol = 0, totInvol = 0, totTarget = 0;
  for (const code of PLAN_CODES) {
    const r = churn.find((x) => x.plan === code) ?? { active: 0, vol: 0, invol: 0 };
    const target = expVol[code] ?? b.voluntaryChurn[code];
    add({ metric: `voluntary churn / month, ${code}`, measured: r.active ? r.vol / r.active : null, target, unit: '%', sample: r.active,
      tolerance: tol(target, r.active, target * 0.2), note: `base ${pct(b.voluntaryChurn[code])}, ×${(target / b.voluntaryChurn[code]).toFixed(2)} for new and serial churners` });
    totActive += r.active; totVol += r.vol; totInvol += r.invol;
    totTarget += r.active * (target + (run.expected.involuntaryChurn?.[code] ?? b.renewalFailureRate * (1 - b.retryRecoveryRate)));
  }
  if (totActive) {
    const target = totTarget / totActive;
    add({ metric: 'total customer churn / month', measured: (totVol + totInvol) / totActive, target, unit: '%', sample: totActive,
      tolerance: tol(target, totActive, target * 0.15), note: 'voluntary + involuntary, all plans' });
    // DESIGN.md "Simulator realism": streaming churns about 4–5 % a month (industry ≈ 5 %, Netflix ≈ 2 %), of which
    // 20–40 % is involuntary (Recurly). Checked against those ranges, not the model: a profile far from them is flagged.
    // The tolerance is the range's half-width plus three standard errors of the sample (small presets are noisy).
    const se = (p: number, n: number) => 3 * Math.sqrt(p * (1 - p) / Math.max(n, 1));
    add({ metric: 'total churn / month, DESIGN range 4–5 %', measured: (totVol + totInvol) / totActive, target: 0.045, unit: '%',
      sample: totActive, tolerance: 0.005 + se(0.045, totActive), note: 'streaming industry ≈ 5 %, Netflix ≈ 2 %' });
    const churned = totVol + totInvol;
    add({ metric: 'involuntary share of churn, DESIGN range 20–40 %', measured: churned ? totInvol / churned : null, target: 0.3, unit: '%',
      sample: churned, tolerance: 0.1 + se(0.3, churned), note: "Recurly's range" });
  }
  for (const code of PLAN_CODES) {
    const r = churn.find((x) => x.plan === code) ?? { active: 0, vol: 0, invol: 0 };
    const target = run.expected.involuntaryChurn?.[code] ?? b.renewalFailureRate * (1 - b.retryRecoveryRate);
    add({ metric: `involuntary churn / month, ${code}`, measured: r.active ? r.invol / r.active : null, target, unit: '%', sample: r.active,
      tolerance: tol(target, r.active, target * 0.2),
      note: `${pct(b.renewalFailureRate)} failures × ${pct(1 - b.retryRecoveryRate)} unrecovered, per renewal` });
  }

  // ── payments
  const pay = await q.one<{ renewals: number; failed: number; dunned: number; recovered: number; charges: number; refunded: number }>(`
    WITH sp AS (SELECT p.* FROM payments p JOIN users u ON u.id = p.user_id AND u.simulated)
    SELECT count(*) FILTER (WHERE kind = 'renewal' AND attempt = 1)::int AS renewals,
           count(*) FILTER (WHERE kind = 'renewal' AND attempt = 1 AND status = 'failed')::int AS failed,
           count(*) FILTER (WHERE kind = 'renewal' AND attempt = 1 AND status = 'failed' AND period_start <= $1::timestamptz - interval '15 days')::int AS dunned,
           count(*) FILTER (WHERE kind = 'renewal' AND attempt = 1 AND status = 'failed' AND period_start <= $1::timestamptz - interval '15 days'
                            AND EXISTS (SELECT 1 FROM payments r WHERE r.subscription_id = sp.subscription_id AND r.period_start = sp.period_start
                                        AND r.kind = 'renewal' AND r.attempt > 1 AND r.status IN ('succeeded', 'refunded')))::int AS recovered,
           count(*) FILTER (WHERE kind IN ('initial', 'renewal') AND status IN ('succeeded', 'refunded'))::int AS charges,
           count(*) FILTER (WHERE kind IN ('initial', 'renewal') AND status = 'refunded')::int AS refunded
    FROM sp`, [W1]);
  add({ metric: 'renewal first-attempt failure rate', measured: pay!.renewals ? pay!.failed / pay!.renewals : null, target: b.renewalFailureRate,
    unit: '%', sample: pay!.renewals, tolerance: tol(b.renewalFailureRate, pay!.renewals, 0.01), note: 'DESIGN default: 6–7 %' });
  add({ metric: 'failed renewals recovered by retries', measured: pay!.dunned ? pay!.recovered / pay!.dunned : null, target: b.retryRecoveryRate,
    unit: '%', sample: pay!.dunned, tolerance: tol(b.retryRecoveryRate, pay!.dunned, 0.03), note: 'retries on days 1, 3, 7, 14; DESIGN default ≈ 75 %' });
  add({ metric: 'charges refunded', measured: pay!.charges ? pay!.refunded / pay!.charges : null, target: b.refundRate, unit: '%',
    sample: pay!.charges, tolerance: tol(b.refundRate, pay!.charges, 0.003) });

  // ── signups: mix of first subscriptions created in the window, Q4 uplift per day, funnel
  const firsts = await q.query<{ code: PlanCode; n: number; q4: number; paid: number }>(`
    WITH f AS ( -- each customer's first subscription, with the plan chosen at signup (its 'created' event)
      SELECT DISTINCT ON (s.user_id) s.id, s.user_id, c.plan_id, s.created_at
      FROM subscriptions s JOIN users u ON u.id = s.user_id AND u.simulated
      JOIN subscription_events c ON c.subscription_id = s.id AND c.type = 'created'
      ORDER BY s.user_id, s.created_at, s.id
    )
    SELECT p.code, count(*)::int AS n,
           count(*) FILTER (WHERE extract(month FROM f.created_at) >= 10)::int AS q4,
           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM subscription_events e WHERE e.subscription_id = f.id AND e.type = 'activated'))::int AS paid
    FROM f JOIN plans p ON p.id = f.plan_id
    WHERE f.created_at >= $1 AND f.created_at < $2
    GROUP BY p.code`, [W0, W1]);
  const signups = firsts.reduce((a, r) => a + r.n, 0);
  const mixTotal = PLAN_CODES.reduce((a, c) => a + b.planMix[c], 0);
  for (const code of PLAN_CODES) {
    const r = firsts.find((x) => x.code === code);
    const target = b.planMix[code] / mixTotal;
    add({ metric: `signup mix, ${code}`, measured: signups ? (r?.n ?? 0) / signups : null, target, unit: '%', sample: signups, tolerance: tol(target, signups, 0.01) });
  }
  const q4Days = await q.one<{ q4: number; other: number }>(`
    SELECT count(*) FILTER (WHERE extract(month FROM d) >= 10)::int AS q4, count(*) FILTER (WHERE extract(month FROM d) < 10)::int AS other
    FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 day', interval '1 day') AS d`, [W0, W1]);
  const q4 = firsts.reduce((a, r) => a + r.q4, 0);
  if (q4Days!.q4 && q4Days!.other) {
    const uplift = signups - q4 > 0 ? (q4 / q4Days!.q4) / ((signups - q4) / q4Days!.other) : null;
    add({ metric: 'Q4 signups per day ÷ other months', measured: uplift, target: b.q4SignupMultiplier, unit: 'x', sample: signups,
      tolerance: Math.max(0.15 * b.q4SignupMultiplier, 3 * b.q4SignupMultiplier * Math.sqrt(1 / Math.max(q4, 1) + 1 / Math.max(signups - q4, 1))),
      note: 'raw ratio (includes the growth trend)' });
  }
  // anonymous visitors (a visit before any login) and those of them who reached the signup page
  const funnel = await q.one<{ visitors: number; signed: number }>(`
    SELECT count(DISTINCT visitor_id) FILTER (WHERE user_id IS NULL)::int AS visitors,
           count(DISTINCT visitor_id) FILTER (WHERE user_id IS NULL AND path = '/signup')::int AS signed
    FROM visits WHERE simulated AND at >= $1 AND at < $2`, [W0, W1]);
  add({ metric: 'anonymous visitors who sign up', measured: funnel!.visitors ? funnel!.signed / funnel!.visitors : null, target: b.visitToSignupRate,
    unit: '%', sample: funnel!.visitors, tolerance: tol(b.visitToSignupRate, funnel!.visitors, 0.01) });
  const paidTarget = 1 - b.initialFailureRate * (1 - b.initialRetrySuccess);
  const paid = firsts.reduce((a, r) => a + r.paid, 0);
  add({ metric: 'signups whose first payment succeeds', measured: signups ? paid / signups : null, target: paidTarget, unit: '%', sample: signups,
    tolerance: tol(paidTarget, signups, 0.01) });

  // ── reactivation: churned customers who come back (an activated subscription) within 3 (and, when observable, 12) months
  const horizons: [number, number][] = [[3, b.returnWithin3Months]];
  if (run.params.months >= 15) horizons.push([12, b.returnWithin12Months]);
  else {
    const x = Math.exp(-3 / (run.expected.returnMeanMonths ?? 1));
    horizons.push([6, (b.returnWithin3Months / (1 - x)) * (1 - x * x)]);
  }
  for (const [h, target] of horizons) {
    const r = await q.one<{ churned: number; returned: number }>(`
      SELECT count(*)::int AS churned,
             count(*) FILTER (WHERE EXISTS (SELECT 1 FROM subscription_events a WHERE a.user_id = s.user_id AND a.type = 'activated'
                                            AND a.at > s.ended_at AND a.at <= s.ended_at + make_interval(months => $3)))::int AS returned
      FROM subscriptions s JOIN users u ON u.id = s.user_id AND u.simulated
      WHERE s.end_reason IN ('voluntary', 'involuntary') AND s.ended_at >= $1 AND s.ended_at <= $2::timestamptz - make_interval(months => $3)`,
      [W0, W1, h]);
    add({ metric: `churned customers back within ${h} months`, measured: r!.churned ? r!.returned / r!.churned : null, target, unit: '%',
      sample: r!.churned, tolerance: tol(target, r!.churned, 0.03),
      note: h === 12 || h === 3 ? `DESIGN default: ${h === 3 ? '≈ 23' : '≈ 41'} %` : 'from the same return curve (12 months not observable in this window)' });
  }

  // ── growth of active customers (MRR > 0) from window start to end, annualized
  const active = await q.one<{ s: number; e: number }>(`
    WITH latest AS (
      SELECT DISTINCT ON (e.subscription_id, b.t) b.t, e.user_id, e.mrr_cents
      FROM subscription_events e JOIN users u ON u.id = e.user_id AND u.simulated
      CROSS JOIN (VALUES ($1::timestamptz), ($2::timestamptz)) AS b(t)
      WHERE e.at <= b.t
      ORDER BY e.subscription_id, b.t, e.at DESC, e.id DESC
    )
    SELECT count(DISTINCT user_id) FILTER (WHERE t = $1 AND mrr_cents > 0)::int AS s,
           count(DISTINCT user_id) FILTER (WHERE t = $2 AND mrr_cents > 0)::int AS e
    FROM latest`, [W0, new Date(W1.getTime() - 1)]);
  const years = run.params.months / 12;
  add({ metric: 'yearly growth of active customers', measured: active!.s ? Math.pow(active!.e / active!.s, 1 / years) - 1 : null, target: b.yearlyGrowth,
    unit: '%', sample: active!.s, tolerance: Math.max(0.03, 3 / Math.sqrt(Math.max(active!.s, 1))), note: 'DESIGN default: 10–16 %' });

  return { checks, months, activeStart: active!.s, activeEnd: active!.e };
}

export function formatSummary(s: Summary): string {
  const fmt = (c: Check, x: number | null) => (x === null ? 'n/a' : c.unit === '%' ? pct(x) : c.unit === 'x' ? `${x.toFixed(2)}×` : x.toFixed(0));
  const lines = [`validation (from the database; ${s.months} full months; active customers ${s.activeStart.toLocaleString('en-US')} -> ${s.activeEnd.toLocaleString('en-US')})`];
  const w = Math.max(...s.checks.map((c) => c.metric.length));
  lines.push(`  ${'metric'.padEnd(w)}  ${'measured'.padStart(10)}  ${'target'.padStart(10)}  ${'±'.padStart(8)}  sample`);
  for (const c of s.checks) {
    lines.push(`${c.ok ? '  ' : '! '}${c.metric.padEnd(w)}  ${fmt(c, c.measured).padStart(10)}  ${fmt(c, c.target).padStart(10)}  ${fmt(c, c.tolerance).padStart(8)}  ` +
      `${c.sample.toLocaleString('en-US')}${c.note ? `  (${c.note})` : ''}`);
  }
  const missed = s.checks.filter((c) => !c.ok).length;
  lines.push(missed ? `${missed} figure(s) outside tolerance (marked !)` : 'all figures within tolerance');
  return lines.join('\n');
}
