// Scheduled digests (server/sharing/digests.ts) against a real SMTP server started here (smtp-server): two server
// processes (server/main.ts) on one database deliver a period's digest once; two senders racing on one delivery row send it once;
// a refused send is retried after its backoff and then delivered; a subscriber who lost access fails at once; without
// SMTP the message lands in the outbox; the form subscribes and unsubscribes, refusing bad input by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import sql from 'sql-template-tag';
import { SMTPServer } from 'smtp-server';
import { useDatabase, createDatabase } from './helpers/db.ts';
import { startServerProcess, type ServerProcess } from './helpers/server-process.ts';
import { createUser, sessionCookie, authedRequest, TEST_ORIGIN, type TestUser } from './helpers/auth.ts';
import { waitFor } from './helpers/sync.ts';
import { createApp } from '../server/app.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { defaultConfig, type Config } from '../server/config.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { loadDashboards } from '../server/dashboards/catalog.ts';
import { runDigests, periodOf, backoffMs, type DigestDeps } from '../server/sharing/digests.ts';

const t = useDatabase(test);
let catalog: Catalog;
let smtp: SMTPServer;
let smtpUrl = '';
/** Every message the SMTP server accepted: envelope recipients and the raw RFC 5322 text. */
const received: { to: string[]; raw: string }[] = [];
/** Recipients the SMTP server refuses (550) while listed. */
const refuse = new Set<string>();
const extra: Db[] = [];

test.before(async () => {
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  smtp = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'], logger: false,
    onRcptTo(address, _session, cb) { cb(refuse.has(address.address) ? Object.assign(new Error('mailbox unavailable'), { responseCode: 550 }) : undefined); },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => { received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') }); cb(); });
    },
  });
  await new Promise<void>((res) => smtp.listen(0, '127.0.0.1', () => res()));
  smtpUrl = `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`;
});

test.after(async () => {
  for (const db of extra) await db.close();
  await new Promise<void>((res) => smtp.close(() => res()));
});

const deps = (config: Partial<Config>, now: Date, db: Db = t.db): DigestDeps => ({
  catalog, dashboards: loadDashboards(undefined, catalog), readDb: db, caches: { reports: null }, now: () => now,
  config: defaultConfig({ smtpUrl, ...config }),
});
const mailsTo = (email: string) => received.filter((m) => m.to.includes(email));
/** The HTML attachment of a message (nodemailer sends attachments base64), decoded. */
function attachment(raw: string): string {
  const at = raw.search(/Content-Disposition: attachment/i);
  assert.ok(at > 0, 'the message has an attachment');
  const body = raw.slice(raw.indexOf('\r\n\r\n', at) + 4);
  return Buffer.from(body.slice(0, body.indexOf('\r\n--')).replace(/\s+/g, ''), 'base64').toString('utf8');
}
async function subscribeRow(user: TestUser, p: string, frequency: 'weekly' | 'monthly') {
  return (await t.db.one<{ id: number }>(sql`INSERT INTO digest_subscriptions (user_id, path, title, frequency)
    VALUES (${user.id}, ${p}, 'Test', ${frequency}) RETURNING id::int`))!.id;
}

test('periods: ISO weeks (their year is their Thursday\'s) and calendar months, UTC', () => {
  assert.is(periodOf('weekly', new Date('2026-01-01T00:00:00Z')), '2026-W01');
  assert.is(periodOf('weekly', new Date('2027-01-01T12:00:00Z')), '2026-W53');
  assert.is(periodOf('weekly', new Date('2024-12-30T00:00:00Z')), '2025-W01');
  assert.is(periodOf('weekly', new Date('2026-12-06T23:59:59Z')), '2026-W49');
  assert.is(periodOf('weekly', new Date('2026-12-07T00:00:00Z')), '2026-W50');
  assert.is(periodOf('monthly', new Date('2026-12-31T23:59:59Z')), '2026-12');
  assert.equal([1, 2, 3, 4, 5, 6, 12].map(backoffMs), [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 21_600_000]);
});

test('two server processes running: the period\'s digest reaches the SMTP server once, snapshot attached', async () => {
  const td = await createDatabase({ label: 'digests_two' });
  const sub = await td.db.one<{ id: number; email: string }>(sql`WITH u AS (INSERT INTO users (email, display_name, role) VALUES
      ('two-instances@test.example', 'Two Instances', 'manager') RETURNING id, email)
    INSERT INTO digest_subscriptions (user_id, path, title, frequency) SELECT id, '/reports/mrr_trend?from=2026-01', 'Test', 'weekly' FROM u
    RETURNING id::int, (SELECT email FROM u)`);
  // Both schedulers' clocks (MARQUEE_TEST_CLOCK_SKEW_MS, 30 ms apart) reach a whole minute — the job's schedule —
  // about 40 s from now, time enough for both to start; a slower start only moves the delivery to the next minute.
  const target = Date.now() + 40_000;
  const skew = Math.ceil(target / 60_000) * 60_000 - target;
  const env = { DATABASE_URL: td.url, MARQUEE_SMTP_URL: smtpUrl };
  let a: ServerProcess | undefined, b: ServerProcess | undefined;
  try {
    [a, b] = await Promise.all([startServerProcess({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: String(skew) }),
      startServerProcess({ ...env, MARQUEE_TEST_CLOCK_SKEW_MS: String(skew + 30) })]);
    const row = await waitFor('the digest sent', () => td.db.one<{ status: string; period: string; transport: string; attempts: number }>(
      sql`SELECT status, period, transport, attempts FROM digest_deliveries WHERE subscription_id = ${sub!.id} AND status = 'sent'`), { timeoutMs: 150_000 });
    const runs = await td.db.query<{ claimed_by: string; scheduled_at: Date }>(sql`SELECT claimed_by, scheduled_at FROM job_runs WHERE job = 'digests.send' ORDER BY scheduled_at`);
    assert.ok(runs.length >= 1);
    assert.equal({ ...row }, { status: 'sent', period: periodOf('weekly', runs[0].scheduled_at), transport: 'smtp', attempts: 1 });
    const sentBy = [a, b].map((s) => (s.out().match(/\[digests\] \S+ \(weekly \S+\) sent to/g) ?? []).length);
    assert.equal(sentBy.sort(), [0, 1], `one instance sent it: ${JSON.stringify(sentBy)}`);
  } finally {
    await Promise.all([a?.stop(), b?.stop()]);
    await td.drop();
  }
  const mails = mailsTo(sub!.email);
  assert.is(mails.length, 1, 'delivered once');
  assert.match(mails[0].raw, /Subject: MRR and ARR trend: weekly digest \d{4}-W\d{2}/);
  const html = attachment(mails[0].raw);
  assert.match(html, /<figure><svg /);
  assert.not.match(html, /<script/i);
});

test('two senders racing on the same period send it once (the unique delivery row, claimed FOR UPDATE SKIP LOCKED)', async () => {
  const other = await createUser(t.db, { role: 'admin' });
  await subscribeRow(other, '/dashboards/executive_overview', 'monthly');
  const now = new Date(Date.now() + 3_600_000);
  const dbs = [createDb(t.url, { max: 2, onError: () => {} }), createDb(t.url, { max: 2, onError: () => {} })];
  extra.push(...dbs);
  const results = await Promise.all(dbs.map((db) => runDigests(db, deps({}, now, db), now)));
  assert.is(results.reduce((n, r) => n + r.sent, 0) >= 1, true);
  assert.is(mailsTo(other.email).length, 1);
  const rows = await t.db.query(sql`SELECT d.status FROM digest_deliveries d JOIN digest_subscriptions s ON s.id = d.subscription_id WHERE s.user_id = ${other.id}`);
  assert.equal(rows.map((r) => r.status), ['sent']);
  // and a later run in the same period sends nothing more
  await runDigests(t.db, deps({}, new Date(now.getTime() + 60_000)), new Date(now.getTime() + 60_000));
  assert.is(mailsTo(other.email).length, 1);
});

test('a refused send is recorded and retried after its backoff, then delivered', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const sub = await subscribeRow(u, '/reports/mrr_trend', 'monthly');
  refuse.add(u.email);
  const t0 = new Date(Date.now() + 2 * 3_600_000);
  const first = await runDigests(t.db, deps({}, t0), t0);
  assert.ok(first.failed >= 1);
  const failed = (await t.db.one(sql`SELECT status, attempts, last_error, next_attempt_at FROM digest_deliveries WHERE subscription_id = ${sub}`))!;
  assert.is(failed.status, 'pending');
  assert.is(failed.attempts, 1);
  assert.match(failed.last_error, /550|mailbox unavailable|refused/);
  assert.is(failed.next_attempt_at.getTime(), t0.getTime() + backoffMs(1));
  refuse.delete(u.email);
  const early = new Date(t0.getTime() + 30_000);
  await runDigests(t.db, deps({}, early), early);
  assert.is(mailsTo(u.email).length, 0, 'not before its backoff');
  const later = new Date(t0.getTime() + backoffMs(1));
  await runDigests(t.db, deps({}, later), later);
  assert.is(mailsTo(u.email).length, 1);
  const sent = (await t.db.one(sql`SELECT status, attempts, last_error FROM digest_deliveries WHERE subscription_id = ${sub}`))!;
  assert.equal({ ...sent }, { status: 'sent', attempts: 2, last_error: null });
});

test('a subscriber whose role lost the page fails at once, without retries; without SMTP the digest goes to the outbox', async () => {
  const u = await createUser(t.db, { role: 'manager' });
  const sub = await subscribeRow(u, '/dashboards/executive_overview', 'weekly');
  await t.db.query(sql`UPDATE users SET role = 'subscriber' WHERE id = ${u.id}`);
  const now = new Date(Date.now() + 3 * 3_600_000);
  await runDigests(t.db, deps({}, now), now);
  const row = (await t.db.one(sql`SELECT status, attempts, last_error FROM digest_deliveries WHERE subscription_id = ${sub}`))!;
  assert.is(row.status, 'failed');
  assert.is(row.attempts, 1);
  assert.match(row.last_error, /subscriber/);
  assert.is(mailsTo(u.email).length, 0);

  const v = await createUser(t.db, { role: 'admin' });
  const vsub = await subscribeRow(v, '/reports/mrr_trend', 'weekly');
  const outbox = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-digest-outbox-'));
  const before = received.length;
  await runDigests(t.db, deps({ smtpUrl: undefined, outboxDir: outbox }, now), now);
  assert.is(received.length, before, 'nothing through SMTP');
  const files = fs.readdirSync(outbox).filter((f) => f.endsWith('.eml'));
  const mine = files.map((f) => fs.readFileSync(path.join(outbox, f), 'utf8')).filter((m) => m.includes(`To: ${v.email}`));
  assert.is(mine.length, 1);
  assert.match(attachment(mine[0]), /<figure><svg /);
  const vrow = (await t.db.one(sql`SELECT status, transport FROM digest_deliveries WHERE subscription_id = ${vsub}`))!;
  assert.equal({ ...vrow }, { status: 'sent', transport: 'outbox' });
  fs.rmSync(outbox, { recursive: true, force: true });
});

test('the form: managers subscribe and unsubscribe; bad input is a 400 naming the field; analysts may not', async () => {
  const app = createApp({ db: t.db, catalog, log: () => {} });
  const m = await createUser(t.db, { role: 'manager' });
  const cookie = await sessionCookie(t.db, m.id);
  const post = (url: string, body: Record<string, string>) => authedRequest(app, cookie, url, {
    method: 'POST', redirect: 'manual', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString(),
  });
  const form = await (await authedRequest(app, cookie, `/digests?path=${encodeURIComponent('/reports/mrr_trend?from=2026-02')}`)).text();
  assert.match(form, /name="path" type="text" value="\/reports\/mrr_trend\?from=2026-02"/);

  const ok = await post('/digests', { path: '/reports/mrr_trend?from=2026-02', frequency: 'monthly' });
  assert.is(ok.status, 303);
  assert.is(ok.headers.get('location'), '/digests?done=subscribed');
  const again = await post('/digests', { path: '/reports/mrr_trend?from=2026-02', frequency: 'monthly' });
  assert.is(again.status, 303);
  const subs = await t.db.query<{ id: number; path: string; title: string }>(sql`SELECT id::int, path, title FROM digest_subscriptions WHERE user_id = ${m.id} AND cancelled_at IS NULL`);
  assert.equal(subs.map((s) => [s.path, s.title]), [['/reports/mrr_trend?from=2026-02', 'MRR and ARR trend']], 'subscribing twice keeps one');
  const audited = await t.db.query(sql`SELECT action, target_id, after FROM audit_log WHERE actor_id = ${m.id} ORDER BY id`);
  assert.equal(audited.map((a) => [a.action, a.target_id, a.after]), [['digest.subscribe', String(subs[0].id), { path: '/reports/mrr_trend?from=2026-02', frequency: 'monthly' }],
    ['digest.subscribe', String(subs[0].id), { path: '/reports/mrr_trend?from=2026-02', frequency: 'monthly' }]]);
  const list = await (await authedRequest(app, cookie, '/digests')).text();
  assert.match(list, /MRR and ARR trend/);

  for (const [body, field, message] of [
    [{ path: '/reports/mrr_trend', frequency: 'daily' }, 'frequency', /frequency: must be weekly or monthly/],
    [{ path: '/admin/users', frequency: 'weekly' }, 'path', /path must be/],
    [{ path: '/reports/mrr_trend?from=2026-13', frequency: 'weekly' }, 'path', /from/],
    [{ path: '/dashboards/nope', frequency: 'weekly' }, 'path', /No dashboard/],
  ] as const) {
    const res = await post('/digests', body);
    const text = await res.text();
    assert.ok(res.status === 400 || res.status === 404, `${JSON.stringify(body)}: ${res.status}`);
    assert.match(text, message);
    assert.match(text, new RegExp(`id="f-${field}"[^>]*aria-invalid="true"`));
  }
  const count = await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM digest_subscriptions WHERE user_id = ${m.id}`);
  assert.is(count!.n, 1, 'nothing written by a refused form');

  const del = await post(`/digests/${subs[0].id}/delete`, {});
  assert.is(del.headers.get('location'), '/digests?done=unsubscribed');
  const gone = await post(`/digests/${subs[0].id}/delete`, {});
  assert.is(gone.headers.get('location'), '/digests?done=gone');
  assert.is((await t.db.query(sql`SELECT 1 FROM audit_log WHERE actor_id = ${m.id} AND action = 'digest.unsubscribe'`)).length, 1, 'one audited unsubscribe');
  // an ended subscription opens no more deliveries
  const now = new Date(Date.now() + 4 * 3_600_000);
  await runDigests(t.db, deps({}, now), now);
  assert.is((await t.db.one<{ n: number }>(sql`SELECT count(*)::int AS n FROM digest_deliveries WHERE subscription_id = ${subs[0].id}`))!.n, 0);

  const analyst = await createUser(t.db, { role: 'analyst' });
  const res = await authedRequest(app, await sessionCookie(t.db, analyst.id), '/digests', {
    method: 'POST', redirect: 'manual', headers: { Origin: TEST_ORIGIN, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'path=%2Freports%2Fmrr_trend&frequency=weekly',
  });
  assert.is(res.status, 403);
});

test.run();
