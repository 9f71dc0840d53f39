// Due renewals for the fault tests (test/faults-billing.test.ts, test/faults-live.test.ts): `n` customers with the test
// gateway's card on file, each with one active subscription (the plan mix by id) whose period ended in the last hour and
// its paid initial payment. Returns the subscriptions with their period ends (the renewal's period start).
import sql from 'sql-template-tag';
import type { Db } from '../../server/db/index.ts';
import { createTestGateway } from '../../server/billing/gateway.ts';

const DAY = 86_400_000;

export async function seedDueRenewals(db: Db, n: number, emailPrefix: string): Promise<{ id: number; pe: Date }[]> {
  const now = Date.now(), like = `${emailPrefix}-%`;
  await db.tx(async (q) => {
    await q.query(sql`INSERT INTO users (email, display_name, role, created_at)
      SELECT ${emailPrefix} || '-' || i || '@example.com', 'Due ' || i, 'subscriber', ${new Date(now - 60 * DAY)} FROM generate_series(1, ${n}) i`);
    await q.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, created_at, current_period_start, current_period_end, cancel_at_period_end)
      SELECT u.id, (SELECT id FROM plans WHERE code = (ARRAY['standard_with_ads', 'standard', 'premium'])[1 + u.id % 3]), 'active',
        pe - interval '1 month', pe - interval '1 month', pe, false
      FROM (SELECT id, ${new Date(now - 3_600_000)}::timestamptz + (id % 3600) * interval '1 second' AS pe FROM users WHERE email LIKE ${like}) u`);
    await q.query(sql`INSERT INTO payments (user_id, subscription_id, kind, period_start, period_end, attempt, amount_cents, currency, status,
        idempotency_key, created_at, settled_at)
      SELECT s.user_id, s.id, 'initial', s.current_period_start, s.current_period_end, 1, p.price_cents, 'USD', 'succeeded',
        'sub:' || s.id || ':period:' || to_char(s.current_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ':attempt:1',
        s.current_period_start, s.current_period_start
      FROM subscriptions s JOIN plans p ON p.id = s.plan_id JOIN users u ON u.id = s.user_id WHERE u.email LIKE ${like}`);
  });
  const card = await createTestGateway(db).attachCard({ number: '4242424242424242', expMonth: 12, expYear: 2040, cvc: '123' });
  if (!card.ok) throw new Error(card.message);
  await db.query(sql`INSERT INTO payment_methods (user_id, gateway, gateway_token, brand, last4, exp_month, exp_year, updated_at)
    SELECT id, 'test', ${card.token}, 'visa', '4242', 12, 2040, ${new Date(now - 60 * DAY)} FROM users WHERE email LIKE ${like}`);
  await db.query('ANALYZE');
  return db.query<{ id: number; pe: Date }>(sql`SELECT s.id, s.current_period_end AS pe FROM subscriptions s JOIN users u ON u.id = s.user_id
    WHERE u.email LIKE ${like} ORDER BY s.id`);
}
