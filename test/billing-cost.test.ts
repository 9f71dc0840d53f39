// What a checkout costs the database, counted (not timed) through a counting Db (test/helpers/query-count.ts): the
// statements and commits of one POST /subscribe, so a change that adds round trips or commits fails here; and the
// plans cache (server/billing/store.ts, cachedPlans) following a change of the plans table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { countingDb } from './helpers/query-count.ts';
import { waitFor } from './helpers/sync.ts';
import { createApp } from '../server/app.ts';
import { createTestGateway } from '../server/billing/gateway.ts';
import { cachedPlans } from '../server/billing/store.ts';

const t = useDatabase(test);
const key = () => randomBytes(16).toString('hex');

/** One signed-in subscriber's checkout, its statements counted from the POST on (the session lookup is cached). */
async function checkout(card = '4242 4242 4242 4242') {
  const counting = countingDb(t.db);
  const app = createApp({ db: counting.db, gateway: createTestGateway(counting.db), log: () => {} });
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = await sessionCookie(t.db, u.id);
  // warm what a running server holds (the session and plans caches, once the change feed is live)
  await waitFor('the change feed', () => t.db.changes.token('plans') !== null);
  await authedRequest(app, cookie, '/plans');
  await authedRequest(app, cookie, '/plans');
  counting.reset();
  const res = await authedRequest(app, cookie, '/subscribe', { method: 'POST',
    body: { plan: 'standard', card_number: card, exp: '12/34', cvc: '123', idempotency_key: key() } });
  return { res, counts: { ...counting.counts }, userId: u.id };
}

test('a successful checkout: at most 9 statements in 4 commits (one transaction), plans not read, the payment pending before the charge', async () => {
  const { res, counts, userId } = await checkout();
  assert.is(res.status, 303);
  assert.is(res.headers.get('location'), '/account?done=subscribed');
  console.log(`POST /subscribe: ${counts.statements} statements, ${counts.transactions} transactions, ${counts.commits} commits`);
  console.log(counts.texts.map((x) => `    ${x.slice(0, 140)}`).join('\n'));
  assert.ok(counts.statements <= 9, `statements ${counts.statements}`);
  assert.ok(counts.commits <= 4, `commits ${counts.commits}`);
  assert.ok(counts.transactions <= 1, `transactions ${counts.transactions}`);
  assert.not.ok(counts.texts.some((x) => /FROM plans\b/.test(x)), 'plans come from the cache');
  // the charge intent (so the pending row) was committed in a transaction before the gateway's ledger row was written
  const gatewayAt = counts.texts.findIndex((x) => /INSERT INTO test_gateway_charges/.test(x));
  const intentAt = counts.texts.findIndex((x) => /INSERT INTO payment_charge_intents/.test(x));
  assert.ok(intentAt >= 0 && gatewayAt > intentAt, 'pending payment written before the gateway charge');
  assert.ok(counts.texts.slice(intentAt, gatewayAt).some((x) => x === 'BEGIN') === false, 'no transaction opened between');
  const p = await t.db.query<any>(sql`SELECT status, kind FROM payments WHERE user_id = ${userId}`);
  assert.equal(p, [{ status: 'succeeded', kind: 'initial' }]);
});

test('a declined checkout costs no more (one more read: the plans page answered again)', async () => {
  const { res, counts } = await checkout('4000 0000 0000 0002');
  assert.is(res.status, 402);
  assert.ok(counts.statements <= 10, `statements ${counts.statements}`);
  assert.ok(counts.commits <= 4, `commits ${counts.commits}`);
});

test('the plans cache follows a change of the plans table (any process: the notify trigger)', async () => {
  await waitFor('the change feed', () => t.db.changes.token('plans') !== null);
  const before = await cachedPlans(t.db);
  assert.is((await cachedPlans(t.db)), before, 'served from the cache');
  // changed from another connection, as a migration or an operator's psql would
  const other = (await import('../server/db/index.ts')).createDb(t.url, { max: 1 });
  try {
    await other.query(sql`UPDATE plans SET name = 'Premium Plus' WHERE code = 'premium'`);
  } finally { await other.close(); }
  await waitFor('the renamed plan', async () => (await cachedPlans(t.db)).byCode('premium')?.name === 'Premium Plus');
  const app = createApp({ db: t.db, log: () => {} });
  assert.match(await (await app.request('/plans')).text(), /Premium Plus/);
  await t.db.query(sql`UPDATE plans SET name = 'Premium' WHERE code = 'premium'`);
  await waitFor('the plan named back', async () => (await cachedPlans(t.db)).byCode('premium')?.name === 'Premium');
});

test.run();
