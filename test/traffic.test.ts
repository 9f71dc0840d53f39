// The live-traffic driver (etl/traffic/driver.ts) against a real HTTP server on a test database: people sign up
// (confirmed from the outbox), subscribe (some declined first), browse, play, upgrade, cancel and resume; the rows it
// made match its summary. The CLI refuses bad flags with exit 2 naming the flag. On a build without the catalog
// routes the catalog actions answer 404 and are counted as skipped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import path from 'node:path';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { testOutbox } from './helpers/auth.ts';
import { startTestServer } from './helpers/server.ts';
import { realTitlesCsv } from './helpers/dataset.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { defaultConfig } from '../server/config.ts';
import { loadCatalog, ensureMarts, refreshMarts } from '../server/reports/engine.ts';
import { startTraffic, formFields, formatSummary, routeClass, type TrafficSummary } from '../etl/traffic/driver.ts';
import { createStaffAccounts } from '../etl/traffic/staff.ts';

const t = useDatabase(test);
const outbox = testOutbox();
let server: Awaited<ReturnType<typeof startTestServer>>;
let summary: TrafficSummary;
const TAG = `trafficjs-${Date.now().toString(36)}`;

test.before(async () => {
  await loadTitles(t.db, realTitlesCsv());
  // the marts the reports read, refreshed once (the test server runs no jobs): report pages answer, not 503 "not ready"
  const catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  server = await startTestServer({ db: t.db, config: defaultConfig({ outboxDir: outbox.dir, signupsPerIpHour: 100_000 }) });
});
test.after(async () => { await server?.close(); outbox.remove(); });

test('formFields reads the hidden and checked fields of the form posting to an action', () => {
  const html = `<form method="post" action="/other"><input type="hidden" name="x" value="1"></form>
    <form method="post" action="/subscribe" novalidate><input type="hidden" name="idempotency_key" value="k&amp;1">
    <input type="radio" name="plan" value="a"><input type="radio" name="plan" value="b" checked><input name="card_number"></form>`;
  assert.equal(formFields(html, '/subscribe'), { idempotency_key: 'k&1', plan: 'b', card_number: '' });
  assert.is(formFields(html, '/nowhere'), undefined);
});

test('a few seconds of traffic: sign-ups confirmed from the outbox, subscriptions, a declined payment, rows matching the summary', async () => {
  const traffic = startTraffic({ base: server.url, users: 12, rate: 12, durationMs: 6000, maxRequests: 3000, seed: 7,
    outboxDir: outbox.dir, declineShare: 0.5, emailTag: TAG, log: () => {} });
  summary = await traffic.done;
  console.log(formatSummary(summary));
  assert.ok(summary.requests > 20, `requests ${summary.requests}`);
  assert.is(summary.serverErrors, 0, 'no 5xx');
  assert.is(summary.networkErrors, 0, 'every request answered');
  assert.ok(summary.signups > 0 && summary.confirmed > 0, 'signed up and confirmed');
  assert.ok(summary.subscriptions > 0, 'subscribed');
  assert.ok(summary.declines > 0, 'a declined card');
  // the rows it made
  const like = `${TAG}-%`;
  const users = await t.db.query<any>(sql`SELECT id FROM users WHERE email LIKE ${like}`);
  assert.is(users.length, summary.confirmed, 'one user per confirmed sign-up');
  const requested = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM audit_log WHERE action = 'user.signup_requested'`);
  assert.is(requested!.n, summary.signups, 'one sign-up request per counted sign-up');
  const subs = await t.db.one<{ n: number }>(sql`SELECT count(DISTINCT s.id)::int AS n FROM subscriptions s JOIN users u ON u.id = s.user_id
    JOIN payments p ON p.subscription_id = s.id AND p.status = 'succeeded' WHERE u.email LIKE ${like}`);
  assert.is(subs!.n, summary.subscriptions, 'one paid subscription per counted subscription');
  const declined = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM payments p JOIN users u ON u.id = p.user_id
    WHERE u.email LIKE ${like} AND p.status = 'failed'`);
  assert.is(declined!.n, summary.declines, 'one failed payment per counted decline');
  const cancels = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM audit_log WHERE action LIKE 'billing.%cancel%'`).catch(() => undefined);
  void cancels;
  // the per-kind counts add up to the total
  const total = Object.values(summary.byKind).flatMap((s) => Object.values(s)).reduce((a, b) => a + b, 0);
  assert.is(total, summary.requests);
  // the catalog: played if this build has it, else its actions were skipped on 404
  const browse = summary.byKind['GET /browse'] ?? {};
  if (browse['404']) assert.ok(summary.skipped404 > 0, 'catalog missing: skipped');
  else if (summary.plays > 0) {
    const watched = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM watch_events w JOIN users u ON u.id = w.user_id WHERE u.email LIKE ${like}`).catch(() => ({ n: -1 }));
    assert.ok(watched!.n !== 0, 'plays wrote watch events');
  }
});

test('staff people: analysts open report pages and their data, managers dashboards and their tiles; times per route class', async () => {
  const logins = await createStaffAccounts(t.db, `${TAG}-staff`);
  const s = await startTraffic({ base: server.url, users: 4, rate: 20, durationMs: 4000, maxRequests: 2000, seed: 11,
    emailTag: `${TAG}-s`, staff: { analysts: 3, managers: 3, logins }, log: (l) => console.log(l) }).done;
  console.log(formatSummary(s));
  assert.is(s.serverErrors, 0, 'no 5xx');
  assert.is(s.networkErrors, 0, 'every request answered');
  assert.ok(s.staffLogins >= 2 && s.staffLogins <= 6, `each staff person signs in once: ${s.staffLogins}`);
  assert.ok(s.reportViews > 0, 'report pages opened');
  assert.ok(s.dashboardViews > 0, 'dashboards opened');
  for (const cls of ['login', 'report', 'dashboard', 'tile']) {
    const c = s.byClass[cls];
    assert.ok(c && c.requests > 0, `${cls} requests`);
    assert.is(c!.clientErrors, 0, `${cls}: no 4xx (valid parameters and filters): ${JSON.stringify(Object.entries(s.byKind).filter(([k]) => routeClass(k) === cls))}`);
    assert.ok(c!.p50 > 0 && c!.p99 >= c!.p50, `${cls} times`);
  }
  // the per-class counts add up to the total
  assert.is(Object.values(s.byClass).reduce((a, c) => a + c.requests, 0), s.requests);
  // sessions of the staff accounts: one per staff person's browser
  const sessions = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE u.email = ANY(${logins.map((l) => l.email)})`);
  assert.is(sessions!.n, s.staffLogins);
});

test('route classes', () => {
  assert.is(routeClass('GET /browse?q='), 'search');
  assert.is(routeClass('GET /browse?page='), 'browse');
  assert.is(routeClass('GET /titles/:id'), 'title');
  assert.is(routeClass('GET /titles/:id/play'), 'play');
  assert.is(routeClass('POST /api/play/:id/progress'), 'progress');
  assert.is(routeClass('POST /subscribe'), 'checkout');
  assert.is(routeClass('POST /account/cancel'), 'account');
  assert.is(routeClass('GET /api/reports/:id.csv'), 'report');
  assert.is(routeClass('GET /api/reports/:id (tile)'), 'tile');
  assert.is(routeClass('GET /dashboards/:id'), 'dashboard');
});

test('the request budget bounds a run', async () => {
  const s = await startTraffic({ base: server.url, users: 5, rate: 50, durationMs: 10_000, maxRequests: 15, seed: 1,
    emailTag: `${TAG}-b`, log: () => {} }).done;
  assert.is(s.requests, 15);
  assert.is(s.stoppedBy, 'requests');
});

test('the CLI: bad flags exit 2 naming the flag; a short run prints its summary', async () => {
  const cli = path.join(import.meta.dirname, '..', 'etl', 'traffic.ts');
  // asynchronous: the server under test runs in this process
  const run = (...args: string[]) => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => { stdout += d; });
    c.stderr.on('data', (d) => { stderr += d; });
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  for (const [args, flag] of [[['--users', '0'], '--users'], [['--rate', 'fast'], '--rate'], [['--duration', '-3'], '--duration'],
    [['--base', 'ftp://x'], '--base'], [['--seed', '1.5'], '--seed'], [['--bogus'], '--bogus'], [['--max-requests'], '--max-requests'],
    [['--analysts', '2'], '--analysts'], [['--manager', 'nobody'], '--manager'], [['--create-staff', '--analyst', 'a@b.c:pw'], '--create-staff']] as const) {
    const r = await run(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, flag);
  }
  const ok = await run('--base', server.url, '--users', '3', '--rate', '5', '--duration', '2s', '--max-requests', '40', '--no-confirm', '--seed', '3');
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /traffic: \d+ requests in/);
  assert.match(ok.stdout, /requests by kind and status/);
});

test.run();
