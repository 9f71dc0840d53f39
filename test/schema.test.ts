import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './helpers/db.ts';

const t = useDatabase(test);

async function rejects(sql: string, params: unknown[], pattern: RegExp) {
  try {
    await t.db.query(sql, params);
  } catch (e: any) {
    assert.match(e.message, pattern);
    return;
  }
  assert.unreachable(`accepted: ${sql}`);
}

async function user(email: string) {
  return (await t.db.one(`INSERT INTO users (email, display_name) VALUES ($1, 'X') RETURNING id`, [email]))!.id as number;
}

test('a plan with a negative price is rejected', async () => {
  await rejects(`INSERT INTO plans (code, name, price_cents, quality, screens, has_ads) VALUES ('cheap', 'Cheap', -100, 'HD', 1, true)`,
    [], /plans_price_cents_check/);
});

test('an unknown role is rejected', async () => {
  await rejects(`INSERT INTO users (email, display_name, role) VALUES ('r@x.io', 'R', 'superuser')`, [], /users_role_check/);
});

test('emails are unique regardless of case', async () => {
  await user('Ann@Example.com');
  await rejects(`INSERT INTO users (email, display_name) VALUES ('ann@example.COM', 'Ann 2')`, [], /users_email_key/);
});

test('a payment must belong to an existing subscription', async () => {
  const u = await user('pay@x.io');
  await rejects(`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, amount_cents, status, idempotency_key, settled_at)
    VALUES ($1, 999999, 'initial', now(), now() + interval '1 month', 799, 'succeeded', 'key-00000001', now())`, [u], /payments_subscription_id_fkey/);
});

test('one customer cannot hold two live subscriptions at once', async () => {
  const u = await user('two@x.io');
  const ins = `INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES ($1, (SELECT id FROM plans WHERE code = 'standard'), $2, now(), now() + interval '1 month')`;
  await t.db.query(ins, [u, 'active']);
  await rejects(ins, [u, 'past_due'], /subscriptions_one_live_per_user/);
  // after the first one ends, a new (reactivated) subscription is fine
  await t.db.query(`UPDATE subscriptions SET status = 'canceled', ended_at = now(), end_reason = 'voluntary' WHERE user_id = $1`, [u]);
  await t.db.query(ins, [u, 'active']);
});

test('a failed payment needs a reason and a canceled subscription an end', async () => {
  const u = await user('fail@x.io');
  const s = (await t.db.one(`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES ($1, 1, 'active', now(), now() + interval '1 month') RETURNING id`, [u]))!.id;
  await rejects(`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, amount_cents, status, idempotency_key, settled_at)
    VALUES ($1, $2, 'renewal', now(), now() + interval '1 month', 799, 'failed', 'key-00000002', now())`, [u, s], /payments_check/);
  await rejects(`UPDATE subscriptions SET status = 'canceled' WHERE id = $1`, [s], /subscriptions_check/);
});

test('duplicate idempotency keys are rejected', async () => {
  const u = await user('idem@x.io');
  const s = (await t.db.one(`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    VALUES ($1, 1, 'active', now(), now() + interval '1 month') RETURNING id`, [u]))!.id;
  const ins = `INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, amount_cents, status, idempotency_key, settled_at)
    VALUES ($1, $2, 'initial', now(), now() + interval '1 month', 799, 'succeeded', 'same-key-1', now())`;
  await t.db.query(ins, [u, s]);
  // payments is partitioned by month: the global key lives in payment_keys (migration 0025)
  await rejects(ins, [u, s], /payment_keys_pkey/);
});

test.run();
