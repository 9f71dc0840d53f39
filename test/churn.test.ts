// Churn features and label in SQL on a hand-made history with values worked out by hand (migration 0019), the
// evaluation code (AUC, PR-AUC, calibration) on tiny hand cases, and the reasons in words.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';
import { rocAuc, prAuc, calibration } from '../server/ml/auc.ts';
import { loadFeatures, reasonInWords, cutoffsFor } from '../server/ml/churn.ts';

const t = useDatabase(test);

// ── evaluation on hand cases ─────────────────────────────────────────────────────────────────────────────────────
test('AUC and PR-AUC on a tiny hand case', () => {
  // pairs (positive, negative): (0.35, 0.1) ✓ (0.35, 0.4) ✗ (0.8, 0.1) ✓ (0.8, 0.4) ✓ → 3/4
  assert.is(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
  // ranked: 0.8 (+) precision 1, 0.4 (−), 0.35 (+) precision 2/3 → (1 + 2/3) / 2
  assert.ok(Math.abs(prAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 5 / 6) < 1e-12);
  // ties count one half; tied scores enter the precision-recall curve together
  assert.is(rocAuc([0.5, 0.5], [true, false]), 0.5);
  assert.is(prAuc([0.5, 0.5, 0.2], [1, 0, 0]), 0.5);
  // perfect and reversed orderings
  assert.is(rocAuc([1, 2, 3, 4], [0, 0, 1, 1]), 1);
  assert.is(rocAuc([4, 3, 2, 1], [0, 0, 1, 1]), 0);
  assert.is(prAuc([1, 2, 3, 4], [0, 0, 1, 1]), 1);
  // undefined without both classes
  assert.ok(Number.isNaN(rocAuc([1, 2], [1, 1])));
  assert.ok(Number.isNaN(prAuc([1, 2], [0, 0])));
});

test('calibration: equal-count bins by predicted probability, mean predicted against observed', () => {
  const bins = calibration([0.9, 0.1, 0.2, 0.8, 0.3, 0.7], [1, 0, 0, 1, 1, 0], 2);
  assert.equal(bins.map((b) => ({ ...b, predicted: Math.round(b.predicted * 1000) / 1000, observed: Math.round(b.observed * 1000) / 1000 })), [
    { bin: 1, n: 3, predicted: 0.2, observed: 0.333 },
    { bin: 2, n: 3, predicted: 0.8, observed: 0.667 },
  ]);
});

test('cutoffs: the test cutoff leaves room for its label; the training labels are known by the test cutoff', () => {
  const { test: testCutoff, train } = cutoffsFor(new Date('2026-12-01T10:00:00Z'));
  assert.is(testCutoff.toISOString(), '2026-10-01T00:00:00.000Z');
  assert.equal(train.map((d) => d.toISOString().slice(0, 10)), ['2026-05-03', '2026-06-02', '2026-07-02', '2026-08-01']);
});

test('reasons in words', () => {
  assert.is(reasonInWords('days_since_last_watch', 23.4), 'no viewing for 23 days');
  assert.is(reasonInWords('failed_payments_90d', 1), '1 failed payment in the last 90 days');
  assert.is(reasonInWords('watch_trend_30d', -2.25), 'viewing down 2.3 h on the month before');
  assert.is(reasonInWords('watch_hours_30d', 0), 'nothing watched in the last 30 days');
  assert.is(reasonInWords('plan_with_ads', 0), undefined);
  assert.is(reasonInWords('past_cancellations', 2), 'cancelled 2 times before');
});

// ── features and label on a hand-made history ────────────────────────────────────────────────────────────────────
const CUTOFF = new Date('2026-06-15T00:00:00Z');
const ids: Record<string, number> = {};

async function user(name: string) {
  const r = await t.db.one<{ id: number }>(`INSERT INTO users (email, display_name, simulated) VALUES ($1, $1, true) RETURNING id`, [`${name}@fixture.test`]);
  return (ids[name] = r!.id);
}
async function sub(userId: number, plan: string, created: string, status: string, extra: { ended?: string; reason?: string; periodEnd?: string } = {}) {
  const r = await t.db.one<{ id: number }>(`INSERT INTO subscriptions (user_id, plan_id, status, created_at, current_period_start, current_period_end, ended_at, end_reason)
    VALUES ($1, (SELECT id FROM plans WHERE code = $2), $3, $4, $4, $5, $6, $7) RETURNING id`,
    [userId, plan, status, created, extra.periodEnd ?? '2026-12-31', extra.ended ?? null, extra.reason ?? null]);
  return r!.id;
}
async function ev(subId: number, userId: number, at: string, type: string, to: string, plan: string, mrr: number) {
  await t.db.query(`INSERT INTO subscription_events (subscription_id, user_id, at, type, to_status, plan_id, mrr_cents)
    VALUES ($1, $2, $3, $4, $5, (SELECT id FROM plans WHERE code = $6), $7)`, [subId, userId, at, type, to, plan, mrr]);
}
let key = 0;
async function pay(subId: number, userId: number, kind: string, from: string, to: string, status: 'succeeded' | 'failed', createdAt: string, attempt = 1) {
  await t.db.query(`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, status, idempotency_key, failure_reason, created_at, settled_at)
    VALUES ($1, $2, $3, $4, $5, $6, 1000, $7, $8, $9, $10, $10)`,
    [userId, subId, kind, from, to, attempt, status, `fixture-key-${++key}`, status === 'failed' ? 'card_declined' : null, createdAt]);
}
async function watch(userId: number, at: string, hours: number) {
  await t.db.query(`INSERT INTO watch_events (user_id, title_id, started_at, seconds_watched) VALUES ($1, $2, $3, $4)`,
    [userId, ids.title, at, Math.round(hours * 3600)]);
}

test.before(async () => {
  ids.title = (await t.db.one<{ id: number }>(`INSERT INTO titles (show_id, type, title) VALUES ('fx1', 'Movie', 'Fixture') RETURNING id`))!.id;
  // Ann: cancelled a first subscription (Jan), came back on 1 March with ads, upgraded to Premium on 1 April, one
  // failed renewal on 1 May recovered the next day, renewed 1 June (period to 1 July) and again 1 July.
  const ann = await user('ann');
  const s1 = await sub(ann, 'standard', '2026-01-01T00:00Z', 'canceled', { ended: '2026-02-01T00:00Z', reason: 'voluntary', periodEnd: '2026-02-01T00:00Z' });
  await ev(s1, ann, '2026-01-01T00:00Z', 'activated', 'active', 'standard', 1799);
  await ev(s1, ann, '2026-02-01T00:00Z', 'canceled', 'canceled', 'standard', 0);
  await pay(s1, ann, 'initial', '2026-01-01T00:00Z', '2026-02-01T00:00Z', 'succeeded', '2026-01-01T00:00Z');
  const s2 = await sub(ann, 'premium', '2026-03-01T00:00Z', 'active', { periodEnd: '2026-08-01T00:00Z' });
  ids.annSub = s2;
  await ev(s2, ann, '2026-03-01T00:00Z', 'activated', 'active', 'standard_with_ads', 799);
  await ev(s2, ann, '2026-04-01T00:00Z', 'renewed', 'active', 'standard_with_ads', 799);
  await ev(s2, ann, '2026-04-01T12:00Z', 'plan_changed', 'active', 'premium', 2499);
  await ev(s2, ann, '2026-05-01T00:00Z', 'past_due', 'past_due', 'premium', 2499);
  await ev(s2, ann, '2026-05-02T00:00Z', 'recovered', 'active', 'premium', 2499);
  await ev(s2, ann, '2026-06-01T00:00Z', 'renewed', 'active', 'premium', 2499);
  await ev(s2, ann, '2026-07-01T00:00Z', 'renewed', 'active', 'premium', 2499);
  await pay(s2, ann, 'initial', '2026-03-01T00:00Z', '2026-04-01T00:00Z', 'succeeded', '2026-03-01T00:00Z');
  await pay(s2, ann, 'renewal', '2026-04-01T00:00Z', '2026-05-01T00:00Z', 'succeeded', '2026-04-01T00:00Z');
  await pay(s2, ann, 'renewal', '2026-05-01T00:00Z', '2026-06-01T00:00Z', 'failed', '2026-05-01T00:00Z', 1);
  await pay(s2, ann, 'renewal', '2026-05-01T00:00Z', '2026-06-01T00:00Z', 'succeeded', '2026-05-02T00:00Z', 2);
  await pay(s2, ann, 'renewal', '2026-06-01T00:00Z', '2026-07-01T00:00Z', 'succeeded', '2026-06-01T00:00Z');
  await pay(s2, ann, 'renewal', '2026-07-01T00:00Z', '2026-08-01T00:00Z', 'succeeded', '2026-07-01T00:00Z');
  await pay(s2, ann, 'renewal', '2026-02-01T00:00Z', '2026-03-01T00:00Z', 'failed', '2026-03-10T00:00Z'); // before the 90 days
  await watch(ann, '2026-06-12T00:00Z', 2);   // 3 days before the cutoff: in 7 and 30 days
  await watch(ann, '2026-06-01T00:00Z', 1);   // in 30 days
  await watch(ann, '2026-05-10T00:00Z', 4);   // 31-60 days before
  await watch(ann, '2026-03-20T00:00Z', 9);   // earlier
  await watch(ann, '2026-06-20T00:00Z', 5);   // after the cutoff: never seen
  // Bob: subscribed 20 May (Standard), asked to cancel on 10 June, ended 20 June; never watched.
  const bob = await user('bob');
  const sb = await sub(bob, 'standard', '2026-05-20T00:00Z', 'canceled', { ended: '2026-06-20T00:00Z', reason: 'voluntary', periodEnd: '2026-06-20T00:00Z' });
  await ev(sb, bob, '2026-05-20T00:00Z', 'activated', 'active', 'standard', 1799);
  await ev(sb, bob, '2026-06-10T00:00Z', 'cancel_requested', 'active', 'standard', 1799);
  await ev(sb, bob, '2026-06-20T00:00Z', 'canceled', 'canceled', 'standard', 0);
  await pay(sb, bob, 'initial', '2026-05-20T00:00Z', '2026-06-20T00:00Z', 'succeeded', '2026-05-20T00:00Z');
  // Cat ended before the cutoff; Dan never paid (incomplete): neither is in the population
  const cat = await user('cat');
  const sc = await sub(cat, 'standard', '2026-04-01T00:00Z', 'canceled', { ended: '2026-06-01T00:00Z', reason: 'involuntary', periodEnd: '2026-06-01T00:00Z' });
  await ev(sc, cat, '2026-04-01T00:00Z', 'activated', 'active', 'standard', 1799);
  await ev(sc, cat, '2026-06-01T00:00Z', 'canceled', 'canceled', 'standard', 0);
  const dan = await user('dan');
  const sd = await sub(dan, 'premium', '2026-06-10T00:00Z', 'incomplete');
  await ev(sd, dan, '2026-06-10T00:00Z', 'created', 'incomplete', 'premium', 0);
});

test('churn_features: the population at the cutoff and every feature, by hand', async () => {
  const rows = await loadFeatures(t.db, CUTOFF);
  assert.equal(rows.map((r) => r.user_id), [ids.ann, ids.bob]);
  const [ann, bob] = rows;
  assert.equal({ ...ann, period_end: ann.period_end.toISOString() }, {
    user_id: ids.ann, subscription_id: ids.annSub, plan_code: 'premium', mrr_cents: 2499, period_end: '2026-07-01T00:00:00.000Z',
    tenure_days: 106, // 1 March → 15 June
    price: 24.99, plan_with_ads: 0, plan_premium: 1,
    plan_changes: 1,
    failed_payments_90d: 1, // 1 May (10 March is 97 days before)
    days_since_last_watch: 3,
    watch_hours_7d: 2, watch_hours_30d: 3, watch_trend_30d: 3 - 4,
    past_cancellations: 1, reactivations: 1,
  });
  assert.is(bob.plan_code, 'standard');
  assert.is(bob.period_end.toISOString(), '2026-06-20T00:00:00.000Z');
  assert.is(bob.tenure_days, 26);
  assert.is(bob.days_since_last_watch, 26); // never watched: since the subscription began
  assert.equal([bob.watch_hours_30d, bob.failed_payments_90d, bob.past_cancellations, bob.reactivations, bob.plan_with_ads, bob.plan_changes], [0, 0, 0, 0, 0, 0]);
});

test('churn_labels: no paid access within 30 days after the period end; unknown until that window is over', async () => {
  const labels = async (until: string) => Object.fromEntries((await t.db.query(`SELECT user_id, churned FROM churn_labels($1, $2)`, [CUTOFF, until]))
    .map((r) => [r.user_id, r.churned]));
  // Ann renewed on 1 July (paid access after her period end), Bob did not
  assert.equal(await labels('2026-09-01'), { [ids.ann]: false, [ids.bob]: true });
  // on 10 July neither window (to 31 July, to 20 July) is over
  assert.equal(await labels('2026-07-10'), { [ids.ann]: null, [ids.bob]: null });
  // Bob coming back on 15 July with a new subscription is paid access within his 30 days
  const sb2 = (await t.db.one<{ id: number }>(`INSERT INTO subscriptions (user_id, plan_id, status, created_at, current_period_start, current_period_end)
    VALUES ($1, 1, 'active', '2026-07-15', '2026-07-15', '2026-08-15') RETURNING id`, [ids.bob]))!.id;
  await pay(sb2, ids.bob, 'initial', '2026-07-15T00:00Z', '2026-08-15T00:00Z', 'succeeded', '2026-07-15T00:00Z');
  assert.equal(await labels('2026-09-01'), { [ids.ann]: false, [ids.bob]: false });
});

test.run();
