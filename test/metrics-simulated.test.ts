// The metrics (README "Metrics: reports and marts") on the simulator's `--scale small` history (2,000 customers, 12 months ending today): every MRR metric
// report equals a reference computed here, independently, event by event from subscription_events in TypeScript
// (not the product's SQL): unfiltered, under a plan filter and under a country filter; cash and payment rates from
// payments. Also: churn and return in the same month count both ways, every month reconciles under every filter (and
// a broken month fails loudly), no KPI compares against the warm-up, and the month in progress is marked partial in
// the rows, the chart spec, the page's data table and the CSV.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog, ensureMarts, refreshMarts, runReport, type Catalog } from '../server/reports/engine.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { validationSummary } from '../etl/simulator/validate.ts';

const t = useDatabase(test);
let catalog: Catalog;
const END = new Date().toISOString().slice(0, 10); // the window ends today, so the month in progress has events
let NOW: Date;

// ── the reference ─────────────────────────────────────────────────────────────────────────────────────────────
type Kind = 'opening' | 'new' | 'expansion' | 'contraction' | 'churn' | 'reactivation';
interface Move { user: number; country: string; month: string; kind: Kind; before: number; after: number; from: string | null; to: string | null; reason: string | null }
let moves: Move[] = [];
let months: string[] = [];
let historyStart = 0; // µs since the epoch
let firstFull = '';

const monthOfUs = (us: number) => new Date(Math.floor(us / 1000)).toISOString().slice(0, 7) + '-01';
// an event at a month's first instant belongs to the month before: MRR at an instant includes the events at it
const monthOfEvent = (us: number) => monthOfUs(us - 1);
const nextMonth = (m: string) => { const d = new Date(`${m}T00:00:00Z`); d.setUTCMonth(d.getUTCMonth() + 1); return d.toISOString().slice(0, 10); };
const prevMonth = (m: string) => { const d = new Date(`${m}T00:00:00Z`); d.setUTCMonth(d.getUTCMonth() - 1); return d.toISOString().slice(0, 10); };

async function buildReference() {
  const h = await t.db.one<{ h: string }>(`SELECT (extract(epoch FROM min(window_start)) * 1e6)::bigint::text AS h FROM simulation_runs`);
  historyStart = Number(h!.h);
  // a churn's reason: the end_reason of the subscription whose MRR ended (subscriptions, not the events' data)
  const events = await t.db.query<{ sub: string; user_id: string; at: string; plan: string; mrr: string; reason: string | null; country: string | null }>(`
    SELECT e.subscription_id AS sub, e.user_id, (extract(epoch FROM e.at) * 1e6)::bigint::text AS at, p.code AS plan,
           e.mrr_cents::text AS mrr, s.end_reason AS reason, u.country
    FROM subscription_events e JOIN plans p ON p.id = e.plan_id JOIN users u ON u.id = e.user_id
    JOIN subscriptions s ON s.id = e.subscription_id
    WHERE e.at <= now() ORDER BY e.user_id, e.at, e.id`);
  moves = [];
  let i = 0;
  while (i < events.length) {
    const user = Number(events[i].user_id), country = events[i].country ?? '--';
    const subs = new Map<string, { mrr: number; plan: string }>();
    let before = 0, beforePlan: string | null = null, everPaid = false;
    let opening: { after: number; plan: string | null } | null = null;
    while (i < events.length && Number(events[i].user_id) === user) {
      // one instant at a time: what the customer holds after every event of that instant
      const at = Number(events[i].at);
      let reason: string | null = null;
      while (i < events.length && Number(events[i].user_id) === user && Number(events[i].at) === at) {
        const e = events[i++];
        if ((subs.get(e.sub)?.mrr ?? 0) > 0 && Number(e.mrr) === 0) reason = e.reason; // this subscription's MRR ended
        subs.set(e.sub, { mrr: Number(e.mrr), plan: e.plan });
      }
      const live = [...subs.values()].filter((s) => s.mrr > 0);
      const after = live.reduce((s, x) => s + x.mrr, 0);
      const afterPlan = live.length ? live.sort((a, b) => b.mrr - a.mrr)[0].plan : null;
      if (after === before && (after === 0 || afterPlan === beforePlan)) continue;
      if (at <= historyStart) {
        opening = { after, plan: afterPlan };
      } else {
        if (opening) {
          if (opening.after > 0) moves.push({ user, country, month: monthOfUs(historyStart), kind: 'opening', before: 0, after: opening.after, from: null, to: opening.plan, reason: null });
          opening = null;
        }
        const kind: Kind = before === 0 ? (everPaid ? 'reactivation' : 'new') : after === 0 ? 'churn' : after >= before ? 'expansion' : 'contraction';
        moves.push({ user, country, month: monthOfEvent(at), kind, before, after, from: beforePlan, to: afterPlan, reason: kind === 'churn' ? reason : null });
      }
      if (after > 0) everPaid = true;
      before = after; beforePlan = afterPlan;
    }
    if (opening && opening.after > 0) moves.push({ user, country, month: monthOfUs(historyStart), kind: 'opening', before: 0, after: opening.after, from: null, to: opening.plan, reason: null });
  }
  months = [];
  const current = new Date(NOW).toISOString().slice(0, 7) + '-01';
  for (let m = monthOfUs(historyStart); m <= current; m = nextMonth(m)) months.push(m);
  firstFull = historyStart * 1 === Date.parse(`${months[0]}T00:00:00Z`) * 1000 ? months[0] : months[1];
}

interface RefMonth {
  month: string; start: number; end: number; customersStart: number; customersEnd: number;
  opening: number; new: number; expansion: number; reactivation: number; contraction: number; churn: number;
  transfer_in: number; transfer_out: number;
  nOpening: number; nNew: number; nReactivated: number; nChurn: number; nVoluntary: number; nInvoluntary: number;
}
function reference(filter: { plans?: string[]; countries?: string[] } = {}): RefMonth[] {
  const inPlan = (p: string | null) => p !== null && (!filter.plans || filter.plans.includes(p));
  const rows = new Map(months.map((m) => [m, {
    month: m, start: 0, end: 0, customersStart: 0, customersEnd: 0, opening: 0, new: 0, expansion: 0, reactivation: 0,
    contraction: 0, churn: 0, transfer_in: 0, transfer_out: 0, nOpening: 0, nNew: 0, nReactivated: 0, nChurn: 0, nVoluntary: 0, nInvoluntary: 0,
  } as RefMonth]));
  const net = new Map(months.map((m) => [m, { cents: 0, customers: 0 }]));
  for (const mv of moves) {
    if (filter.countries && !filter.countries.includes(mv.country)) continue;
    const r = rows.get(mv.month)!;
    const inFrom = mv.before > 0 && inPlan(mv.from), inTo = mv.after > 0 && inPlan(mv.to);
    if (!inFrom && !inTo) continue;
    const n = net.get(mv.month)!;
    n.cents += (inTo ? mv.after : 0) - (inFrom ? mv.before : 0);
    n.customers += (inTo ? 1 : 0) - (inFrom ? 1 : 0);
    switch (mv.kind) {
      case 'opening': r.opening += mv.after; r.nOpening++; break;
      case 'new': r.new += mv.after; r.nNew++; break;
      case 'reactivation': r.reactivation += mv.after; r.nReactivated++; break;
      case 'churn':
        r.churn += mv.before; r.nChurn++;
        if (mv.reason === 'voluntary') r.nVoluntary++;
        if (mv.reason === 'involuntary') r.nInvoluntary++;
        break;
      default:
        if (inFrom && inTo) { if (mv.kind === 'expansion') r.expansion += mv.after - mv.before; else r.contraction += mv.before - mv.after; }
        else if (inTo) r.transfer_in += mv.after;
        else r.transfer_out += mv.before;
    }
  }
  let cents = 0, customers = 0;
  return months.map((m) => {
    const r = rows.get(m)!, n = net.get(m)!;
    r.start = cents; r.customersStart = customers;
    cents += n.cents; customers += n.customers;
    r.end = cents; r.customersEnd = customers;
    return r;
  });
}

// ── setup ─────────────────────────────────────────────────────────────────────────────────────────────────────
test.before(async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  await runSimulation(t.db, parseArgs(['--scale', 'small', '--seed', '11', '--end', END, '--quiet']));
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  const r = await refreshMarts(t.db, catalog);
  const failed = r.results.filter((x) => !x.ok);
  if (failed.length) throw new Error(`mart refresh failed: ${JSON.stringify(failed)}`);
  NOW = (await t.db.one<{ last: Date }>(`SELECT max(as_of) AS last FROM report_marts`))!.last;
  await buildReference();
});

type Rows = Record<string, any>[];
async function run(id: string, params: Record<string, string | string[]> = {}): Promise<{ rows: Rows; spec: any }> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) q.append(k, x);
  const res = await runReport(t.db, catalog, id, q, { role: 'analyst', now: NOW, cache: false });
  return { rows: res.rows, spec: res.spec };
}
const rows = async (id: string, params: Record<string, string | string[]> = {}) => (await run(id, params)).rows;
const cents = (dollars: number) => Math.round(dollars * 100);
const rate = (n: number, d: number) => (d ? Math.round((n / d) * 10_000) / 10_000 : null);
const near = (a: number | null, b: number | null, what: string) => {
  if (a === null || b === null) return assert.is(a, b, what);
  assert.ok(Math.abs(a - b) < 0.000051, `${what}: report ${a}, reference ${b}`);
};

const filters: [string, { plans?: string[]; countries?: string[] }, Record<string, string | string[]>][] = [];
test.before(async () => {
  const top = await t.db.one<{ country: string }>(`SELECT country FROM users WHERE simulated AND country IS NOT NULL GROUP BY country ORDER BY count(*) DESC, country LIMIT 1`);
  filters.push(['all', {}, {}], ['premium', { plans: ['premium'] }, { plan: 'premium' }],
    ['ads + standard', { plans: ['standard_with_ads', 'standard'] }, { plan: ['standard', 'standard_with_ads'] }],
    [top!.country, { countries: [top!.country] }, { country: top!.country }]);
});

test('the reference sees the simulated business: an opening balance, every kind of movement, transfers under a filter', () => {
  const all = reference();
  assert.ok(all[0].opening > 0 && all[0].nOpening > 0, 'customers subscribed when the window opened are opening MRR');
  for (const k of ['new', 'expansion', 'contraction', 'churn', 'reactivation'] as const) assert.ok(all.some((r) => r[k] > 0), k);
  assert.ok(reference({ plans: ['premium'] }).some((r) => r.transfer_in > 0 && r.transfer_out > 0), 'plan changes cross the premium filter');
  assert.ok(months.length >= 13);
});

test('mrr_movements equals the reference in every month, unfiltered and under plan and country filters; it reconciles', async () => {
  const period = { from: months[0].slice(0, 7), to: months.at(-1)!.slice(0, 7) };
  for (const [name, f, params] of filters) {
    const got = await rows('mrr_movements', { ...period, ...params });
    const ref = reference(f);
    assert.equal(got.map((r) => r.month), months, name);
    for (const [i, r] of got.entries()) {
      const e = ref[i];
      const want = [e.start, e.opening, e.new, e.expansion, e.reactivation, e.contraction, e.churn, e.transfer_in, e.transfer_out, e.end];
      const have = ['start_mrr', 'opening', 'new', 'expansion', 'reactivation', 'contraction', 'churn', 'transfer_in', 'transfer_out', 'end_mrr'].map((k) => cents(r[k]));
      assert.equal(have, want.map(Math.round), `${name} ${r.month}: start, opening, new, expansion, reactivation, contraction, churn, transfers, end`);
      // reconciliation: start + movements = end, the end equals MRR computed point in time, and the next month starts there
      assert.is(have[0] + have[1] + have[2] + have[3] + have[4] - have[5] - have[6] + have[7] - have[8], have[9], `${name} ${r.month}: start + movements = end`);
      assert.is(r.reconciliation_gap, 0, `${name} ${r.month}`);
      assert.is(cents(r.mrr_at_month_end), have[9], `${name} ${r.month}: point-in-time MRR`);
      if (i > 0) assert.is(r.start_mrr, got[i - 1].end_mrr, `${name} ${r.month}: start = previous end`);
      if (!f.plans) assert.is(r.transfer_in + r.transfer_out, 0, `${name}: no transfers without a plan filter`);
    }
  }
  // the plans add up to the total, movement by movement
  const all = await rows('mrr_movements', period);
  const byPlan = await Promise.all(['standard_with_ads', 'standard', 'premium'].map((plan) => rows('mrr_movements', { ...period, plan })));
  for (const [i, r] of all.entries()) {
    for (const k of ['start_mrr', 'end_mrr', 'opening', 'new', 'reactivation', 'churn']) {
      assert.is(byPlan.reduce((s, p) => s + cents(p[i][k]), 0), cents(r[k]), `${r.month} ${k}: plans add up`);
    }
    // a plan change inside the total is an expansion or contraction; across plans it is a transfer out of one and into another
    const transfersIn = byPlan.reduce((s, p) => s + cents(p[i].transfer_in), 0), transfersOut = byPlan.reduce((s, p) => s + cents(p[i].transfer_out), 0);
    assert.is(transfersIn - transfersOut, cents(r.expansion) - cents(r.contraction), `${r.month}: transfers net to the plan changes`);
  }
});

test('churn, ARPA, LTV, quick ratio, MRR churn, MRR and subscribers equal the reference under every filter', async () => {
  const period = { from: months[0].slice(0, 7), to: months.at(-1)!.slice(0, 7) };
  for (const [name, f, params] of filters) {
    const ref = reference(f);
    const [churn, mrrChurn, ltv, arpa, qr, trend, subs] = await Promise.all(['customer_churn', 'mrr_churn', 'ltv', 'arpa', 'quick_ratio', 'mrr_trend', 'active_subscribers']
      .map((id) => rows(id, { ...period, ...params })));
    for (const [i, e] of ref.entries()) {
      const m = `${name} ${e.month}`;
      const partial = i === ref.length - 1 || (i === 0 && firstFull !== months[0]);
      const base = e.customersStart + e.nOpening, baseCents = e.start + e.opening;
      const c = churn[i];
      assert.equal([c.month, c.customers_at_start, c.churned, c.voluntary_churned, c.involuntary_churned, c.reactivated],
        [e.month, base, e.nChurn, e.nVoluntary, e.nInvoluntary, e.nReactivated], m);
      assert.is(c.partial, partial, `${m} partial`);
      near(c.churn_rate, partial ? null : rate(e.nChurn, base), `${m} churn rate`);
      near(c.net_churn_rate, partial ? null : rate(e.nChurn - e.nReactivated, base), `${m} net churn rate`);
      near(mrrChurn[i].gross_mrr_churn_rate, partial ? null : rate(e.churn + e.contraction, baseCents), `${m} gross MRR churn`);
      near(mrrChurn[i].net_mrr_churn_rate, partial ? null : rate(e.churn + e.contraction - e.expansion - e.reactivation, baseCents), `${m} net MRR churn`);
      const arpaCents = e.customersEnd ? e.end / e.customersEnd : null;
      assert.ok(Math.abs(cents(arpa[i].arpa ?? 0) - (arpaCents ?? 0)) <= 1, `${m} ARPA ${arpa[i].arpa} vs ${arpaCents}`);
      const ltvCents = !partial && arpaCents !== null && e.nChurn ? arpaCents / (e.nChurn / base) : null;
      if (ltvCents === null) assert.is(ltv[i].ltv, null, `${m} LTV`);
      else assert.ok(Math.abs(cents(ltv[i].ltv) - ltvCents) <= 1, `${m} LTV ${ltv[i].ltv} vs ${ltvCents / 100}`);
      const lost = e.contraction + e.churn;
      near(qr[i].quick_ratio, partial || !lost ? null : rate(e.new + e.expansion + e.reactivation, lost), `${m} quick ratio`);
      assert.is(cents(trend[i].mrr), Math.round(e.end), `${m} MRR`);
      assert.is(trend[i].active_customers, e.customersEnd, `${m} active customers`);
      assert.is(subs[i].active_subscribers, e.customersEnd, `${m} active subscribers`);
    }
  }
});

test('a churn and a return in the same month count both ways (a churn and a reactivation)', async () => {
  const byUserMonth = new Map<string, Set<Kind>>();
  for (const mv of moves) {
    const k = `${mv.user} ${mv.month}`;
    byUserMonth.set(k, (byUserMonth.get(k) ?? new Set()).add(mv.kind));
  }
  const both = [...byUserMonth.entries()].filter(([, s]) => s.has('churn') && s.has('reactivation')).map(([k]) => k.split(' ')[1]);
  assert.ok(both.length > 0, 'the simulated history has customers who churn and come back within a month');
  const churn = await rows('customer_churn', { from: months[0].slice(0, 7), to: months.at(-1)!.slice(0, 7) });
  const ref = reference();
  for (const month of new Set(both)) {
    const i = months.indexOf(month);
    const returned = both.filter((m) => m === month).length;
    // comparing each customer's MRR at month start and month end would see neither event for these customers
    assert.is(churn[i].churned, ref[i].nChurn, month);
    assert.is(churn[i].reactivated, ref[i].nReactivated, month);
    assert.ok(churn[i].churned >= returned && churn[i].reactivated >= returned, `${month}: ${returned} churned and returned`);
  }
});

test('KPI tiles equal the reference and never compare against the warm-up', async () => {
  const ref = reference();
  const at = (m: string) => ref.find((r) => r.month === m)!;
  const firstIdx = months.indexOf(firstFull);
  for (const month of [months[0], firstFull, months[firstIdx + 1], months.at(-2)!, months.at(-1)!]) {
    const p = { month: month.slice(0, 7) };
    const mrr = (await rows('kpi_mrr', p))[0];
    assert.is(cents(mrr.mrr), Math.round(at(month).end), `MRR ${month}`);
    const hasPrevious = month > firstFull;
    assert.is(mrr.previous === null, !hasPrevious, `MRR ${month}: a change only after the first full month`);
    if (hasPrevious) assert.is(cents(mrr.previous), Math.round(at(prevMonth(month)).end), `previous MRR ${month}`);
    for (const id of ['kpi_arr', 'kpi_active_subscribers', 'kpi_arpa', 'kpi_customer_churn_rate', 'kpi_nrr', 'kpi_mrr_at_risk', 'kpi_net_cash_revenue']) {
      const [row] = await rows(id, p);
      if (!hasPrevious) assert.is(row.previous, null, `${id} ${month}: no comparison with the warm-up`);
      assert.is(row.partial, month === months.at(-1) || (month === months[0] && firstFull !== months[0]), `${id} ${month} partial`);
    }
    const subs = (await rows('kpi_active_subscribers', p))[0];
    assert.is(subs.active_subscribers, at(month).customersEnd, `subscribers ${month}`);
  }
  // the churn tile's default month is the last complete one, the same month the churn chart's last rate shows
  const tile = (await rows('kpi_customer_churn_rate'))[0];
  const chart = (await rows('customer_churn')).filter((r) => r.churn_rate !== null).at(-1)!;
  assert.equal([tile.month, tile.customer_churn_rate], [chart.month, chart.churn_rate]);
  assert.is(tile.month, months.at(-2));
});

test('the month in progress is partial in the rows, the chart spec, the data table and the CSV; ratios ask first', async () => {
  const { rows: r, spec } = await run('mrr_movements');
  assert.equal([r.at(-1)!.month, r.at(-1)!.partial, r.at(-1)!.period_note], [months.at(-1), true, 'so far']);
  assert.ok(r.slice(0, -1).every((x) => x.partial === false || x.month === months[0]));
  assert.match(JSON.stringify(spec), /"so far"/, 'the chart marks the partial month');
  for (const id of ['mrr_trend', 'customer_churn', 'ltv', 'arpa', 'active_subscribers', 'net_cash_revenue', 'payment_failure_recovery', 'signups', 'plan_mix', 'mrr_at_risk']) {
    const x = await rows(id);
    assert.ok(x.some((row) => row.partial === true && row.month === months.at(-1)), `${id}: the current month is partial`);
    assert.ok(x.every((row) => row.partial === (row.month === months.at(-1)) || row.month === months[0]), `${id}: only it`);
  }
  const ltv = await rows('ltv');
  assert.is(ltv.at(-1)!.ltv, null, 'no LTV for the month in progress by default');
  const asked = await rows('ltv', { include_partial: 'true' });
  assert.ok(asked.at(-1)!.ltv === null || asked.at(-1)!.ltv > 0, 'include_partial=true computes it');
  assert.is((await rows('customer_churn', { include_partial: 'true' })).at(-1)!.churn_rate !== null, true);

  const app = createApp({ db: t.db, catalog, now: () => NOW, log: () => {} });
  const u = await createUser(t.db, { role: 'analyst' });
  const cookie = await sessionCookie(t.db, u.id, { now: NOW });
  const csv = await (await authedRequest(app, cookie, '/api/reports/mrr_movements.csv')).text();
  const lines = csv.trim().split(/\r?\n/);
  const header = lines[0].split(',');
  assert.ok(header.includes('partial') && header.includes('period_note'), lines[0]);
  const last = lines.at(-1)!.split(',');
  assert.is(last[header.indexOf('partial')], 'true');
  assert.is(last[header.indexOf('period_note')], 'so far');
  const page = await (await authedRequest(app, cookie, '/reports/mrr_movements')).text();
  assert.match(page, /<th scope="col">partial<\/th>/);
  assert.match(page, /<td>so far<\/td>/);
  const json = await (await authedRequest(app, cookie, '/api/reports/mrr_movements.json')).json();
  assert.equal(Object.keys(json[0]).filter((k) => ['opening', 'new', 'expansion', 'contraction', 'churn', 'reactivation'].includes(k)),
    ['opening', 'new', 'expansion', 'reactivation', 'contraction', 'churn']);
  assert.is(json.at(-1).partial, true);
});

test('mrr_reconciliation (from its mart): every month of every segment is the movements report under that filter, gap 0', async () => {
  const period = { from: months[0].slice(0, 7), to: months.at(-1)!.slice(0, 7) };
  const got = await rows('mrr_reconciliation', period);
  const plans = (await t.db.query<{ code: string }>('SELECT code FROM plans ORDER BY code')).map((p) => p.code);
  const countries = (await t.db.query<{ c: string }>(`SELECT DISTINCT coalesce(country, '--') AS c FROM users WHERE simulated ORDER BY 1`)).map((r) => r.c);
  const segments: [string, Record<string, string>][] = [['all customers', {}], ...plans.map((p) => [`plan ${p}`, { plan: p }] as [string, Record<string, string>]),
    ...countries.map((c) => [`country ${c}`, { country: c }] as [string, Record<string, string>])];
  assert.equal(new Set(got.map((r) => r.segment)), new Set(segments.map(([s]) => s)), 'all customers, each plan, each country');
  assert.is(got.length, segments.length * months.length);
  // every plan, and a spread of countries (a customer without a country is the segment "country --", not a filter value)
  for (const [segment, params] of segments.filter(([seg], i) => seg !== 'country --' && (i < 5 || i % 7 === 0))) {
    const mv = await rows('mrr_movements', { ...period, ...params });
    const mine = got.filter((r) => r.segment === segment);
    assert.equal(mine.map((r) => r.month), mv.map((r) => r.month), segment);
    for (const [i, r] of mine.entries()) {
      assert.equal([r.start_mrr, r.end_mrr, r.mrr_at_month_end, r.gap, r.partial], [mv[i].start_mrr, mv[i].end_mrr, mv[i].mrr_at_month_end, 0, mv[i].partial], `${segment} ${r.month}`);
      assert.is(cents(r.net_movements), cents(mv[i].end_mrr) - cents(mv[i].start_mrr), `${segment} ${r.month}: net movements`);
    }
  }
  assert.ok(got.filter((r) => r.month < months.at(-1)!).every((r) => r.status === 'ok'), 'closed months: ok');
  const narrow = await rows('mrr_reconciliation', { from: months[1].slice(0, 7), to: months[2].slice(0, 7) });
  assert.equal([...new Set(narrow.map((r) => r.month))], [months[1], months[2]], 'the range filters months');
});

test('a closed month that does not reconcile fails the movements report loudly, naming the month', async () => {
  const month = months[2];
  const key = await t.db.one(`SELECT month, movement, from_plan, to_plan, country, churn_reason FROM mart_mrr_movements
    WHERE month = $1 AND movement = 'new' ORDER BY from_plan, to_plan, country LIMIT 1`, [month]);
  const shift = (by: number) => t.db.query(`UPDATE mart_mrr_movements SET after_cents = after_cents + $7 WHERE month = $1 AND movement = $2
    AND from_plan = $3 AND to_plan = $4 AND country = $5 AND churn_reason = $6`,
    [key!.month, key!.movement, key!.from_plan, key!.to_plan, key!.country, key!.churn_reason, by]);
  await shift(100);
  try {
    let err: any = null;
    try { await rows('mrr_movements'); } catch (e) { err = e; }
    assert.ok(err, 'the report refuses to show movements that do not add up');
    assert.match(String(err.message), new RegExp(`does not reconcile: month ${month}`));
  } finally {
    await shift(-100);
  }
  assert.ok((await rows('mrr_movements')).length > 0, 'restored');
});

test('the validation summary checks the DESIGN realism ranges (total churn 4–5 %, involuntary 20–40 % of it)', async () => {
  const s = await validationSummary(t.db);
  const names = s.checks.map((c) => c.metric);
  assert.ok(names.includes('total churn / month, DESIGN range 4–5 %'), names.join('; '));
  assert.ok(names.includes('involuntary share of churn, DESIGN range 20–40 %'), names.join('; '));
  assert.ok(names.includes('failed renewals recovered by retries'), names.join('; '));
});

test('net cash revenue and payment failure / recovery equal a reference from payments, unfiltered and by country', async () => {
  const pays = await t.db.query<{ kind: string; attempt: number; amount: number; status: string; settled: string | null; refunded: string | null;
    refund: number | null; due: string; country: string | null }>(`
    SELECT p.kind, p.attempt, p.amount_cents AS amount, p.status, to_char(p.settled_at AT TIME ZONE 'UTC', 'YYYY-MM') AS settled,
           to_char(p.refunded_at AT TIME ZONE 'UTC', 'YYYY-MM') AS refunded, p.refund_cents AS refund,
           to_char(p.period_start AT TIME ZONE 'UTC', 'YYYY-MM') AS due, u.country
    FROM payments p JOIN users u ON u.id = p.user_id`);
  const top = filters[3][1].countries![0];
  const from = months[1].slice(0, 7), to = months.at(-1)!.slice(0, 7);
  for (const country of [undefined, top]) {
    const mine = pays.filter((p) => !country || p.country === country);
    const params = { from, to, ...(country ? { country } : {}) };
    const cash = await rows('net_cash_revenue', params);
    const pfr = await rows('payment_failure_recovery', params);
    for (const m of months.slice(1)) {
      const ym = m.slice(0, 7);
      const collected = mine.filter((p) => (p.status === 'succeeded' || p.status === 'refunded') && p.settled === ym).reduce((s, p) => s + p.amount, 0);
      const refunded = mine.filter((p) => p.status === 'refunded' && p.refunded === ym).reduce((s, p) => s + (p.refund ?? 0), 0);
      const got = cash.filter((r) => r.month === m);
      assert.is(got.reduce((s, r) => s + cents(r.collected), 0), collected, `${country ?? 'all'} ${ym} collected`);
      assert.is(got.reduce((s, r) => s + cents(r.refunded), 0), refunded, `${country ?? 'all'} ${ym} refunded`);
      const renewals = mine.filter((p) => p.kind === 'renewal' && p.due === ym);
      const first = renewals.filter((p) => p.attempt === 1 && p.status !== 'pending').length;
      const failed = renewals.filter((p) => p.attempt === 1 && p.status === 'failed').length;
      const recovered = renewals.filter((p) => p.attempt > 1 && (p.status === 'succeeded' || p.status === 'refunded')).length;
      const r = pfr.find((x) => x.month === m)!;
      assert.equal([r.first_attempts, r.first_attempt_failures, r.recovered], [first, failed, recovered], `${country ?? 'all'} ${ym} payments`);
      assert.is(r.partial, m === months.at(-1));
    }
  }
});

test('every report answers on simulated data with its defaults', async () => {
  for (const id of catalog.reports.keys()) await rows(id);
});

test.run();
