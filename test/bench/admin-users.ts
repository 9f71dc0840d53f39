// /admin/users on a big customer base: 200k users (with subscriptions for half), timing the list page, a deep page,
// a search and a role filter through the app, against a trivial authenticated page measured in the same run.
import sql from 'sql-template-tag';
import { benchDatabase, fmt, record } from './lib.ts';
import { createApp } from '../../server/app.ts';
import { hashPassword } from '../../server/auth/password.ts';
import { createSession } from '../../server/auth/session.ts';

const USERS = Number(process.env.BENCH_USERS ?? 200_000);
const bench = await benchDatabase('admin_users');
try {
  const db = bench.db;
  await db.query(sql`INSERT INTO users (email, display_name, role, simulated, created_at)
    SELECT 'customer' || g || '@sim.example', 'Customer ' || g, 'subscriber', true, now() - (g || ' minutes')::interval
    FROM generate_series(1, ${USERS}) g`);
  await db.query(sql`INSERT INTO subscriptions (user_id, plan_id, status, current_period_start, current_period_end)
    SELECT u.id, 1 + (u.id % 3), 'active', now() - interval '10 days', now() + interval '20 days' FROM users u WHERE u.id % 2 = 0`);
  await db.query('ANALYZE');
  const admin = (await db.one<{ id: number }>(sql`INSERT INTO users (email, display_name, role, password_hash)
    VALUES ('admin@bench.example', 'Admin', 'admin', ${await hashPassword('bench admin pass')}) RETURNING id`))!;
  const { token } = await createSession(db, admin.id, new Date());
  const app = createApp({ db, log: () => {} });
  const get = async (path: string) => {
    const t0 = performance.now();
    const res = await app.request(path, { headers: { Cookie: `mq_session=${token}` } });
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    await res.text();
    return performance.now() - t0;
  };
  const median = async (path: string, n = 15) => {
    await get(path);
    const xs: number[] = [];
    for (let i = 0; i < n; i++) xs.push(await get(path));
    return xs.sort((a, b) => a - b)[Math.floor(n / 2)];
  };
  const base = await median('/account/password');
  console.log(`${USERS.toLocaleString('en-US')} users; median of 15 requests each (ms), ratio to a trivial signed-in page`);
  for (const path of ['/account/password', '/admin/users', '/admin/users?page=4000', '/admin/users?q=customer12345',
    '/admin/users?q=Customer%201999', '/admin/users?role=admin', `/admin/users/${admin.id}`, '/admin/audit']) {
    const ms = await median(path);
    console.log(`  ${path.padEnd(34)} ${fmt(ms).padStart(7)}   ×${(ms / base).toFixed(1)}`);
    if (path !== '/account/password') record(`GET ${path} (median)`, ms, 'ms', { baseline: 'GET /account/password', baselineValue: base });
  }
} finally {
  await bench.close();
}
