// Visits: HTML page views only (GET, 2xx, text/html; not static files, the API, probes, redirects, errors or bots),
// buffered and written in batches off the request path, flushed on shutdown (also through main.ts and SIGTERM), the
// visitor cookie only without DNT / Sec-GPC, referrer classes from the Referer header, bounded memory when the
// database is down.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { createDb } from '../server/db/index.ts';
import { VisitRecorder, referrerClass, isBot, VISITOR_COOKIE } from '../server/visits.ts';

const t = useDatabase(test);
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const root = path.resolve(import.meta.dirname, '..');

let recorder: VisitRecorder;
let app: ReturnType<typeof createApp>;
test.before(async () => {
  // a long interval: the test decides when to flush
  recorder = new VisitRecorder(t.db, { intervalMs: 60_000, log: () => {} });
  app = createApp({ db: t.db, log: () => {}, visits: recorder });
});

const visits = () => t.db.query(`SELECT visitor_id, user_id, path, referrer_class, simulated FROM visits ORDER BY id`);
const clear = () => t.db.query('DELETE FROM visits');
const visitorCookie = (res: Response) => /mq_visitor=([0-9a-f-]{36})/.exec(res.headers.getSetCookie().join('\n'))?.[1];

test('an HTML page view is one row after the flush; the anonymous visitor keeps one id through its cookie', async () => {
  await clear();
  const first = await app.request('/login', { headers: { 'User-Agent': CHROME } });
  assert.is(first.status, 200);
  const id = visitorCookie(first);
  assert.ok(id, 'visitor cookie set');
  assert.match(first.headers.getSetCookie().join('\n'), /mq_visitor=[^;]+; Max-Age=34560000; Path=\/; HttpOnly; SameSite=Lax/);
  assert.equal(await visits(), [], 'nothing written on the request path');
  await app.request('/signup', { headers: { 'User-Agent': CHROME, Cookie: `${VISITOR_COOKIE}=${id}`, Referer: 'http://localhost/login' } });
  assert.is(recorder.pending, 2);
  await recorder.flush();
  assert.equal(await visits(), [
    { visitor_id: id, user_id: null, path: '/login', referrer_class: 'direct', simulated: false },
    { visitor_id: id, user_id: null, path: '/signup', referrer_class: 'internal', simulated: false },
  ]);
});

test('a page kept encoded (anonymous /browse) is still one row per view, each new visitor with a cookie of its own', async () => {
  await clear();
  const [a, b] = [await app.request('/browse', { headers: { 'User-Agent': CHROME } }), await app.request('/browse', { headers: { 'User-Agent': CHROME, 'Accept-Encoding': 'br' } })];
  assert.is(b.headers.get('content-encoding'), 'br');
  const ids = [visitorCookie(a), visitorCookie(b)];
  assert.ok(ids[0] && ids[1] && ids[0] !== ids[1], 'one cookie each');
  await recorder.flush();
  assert.equal((await visits()).map((v) => [v.visitor_id, v.path]), [[ids[0], '/browse'], [ids[1], '/browse']]);
});

test('signed-in views carry the user; the query string is not stored', async () => {
  await clear();
  const u = await createUser(t.db, { role: 'subscriber' });
  const res = await app.request('/account?tab=x', { headers: { 'User-Agent': CHROME, Cookie: await sessionCookie(t.db, u.id), Referer: 'https://www.google.com/' } });
  assert.is(res.status, 200);
  await recorder.flush();
  const [v] = await visits();
  assert.equal([v.user_id, v.path, v.referrer_class], [u.id, '/account', 'search']);
});

test('DNT or Sec-GPC: no cookie read or set, a random visitor id per view, no user id', async () => {
  await clear();
  const u = await createUser(t.db, { role: 'subscriber' });
  const cookie = `${await sessionCookie(t.db, u.id)}; ${VISITOR_COOKIE}=11111111-2222-4333-8444-555555555555`;
  for (const h of [{ DNT: '1' }, { 'Sec-GPC': '1' }, { DNT: '1' }] as Record<string, string>[]) {
    const res = await app.request('/account', { headers: { 'User-Agent': CHROME, Cookie: cookie, ...h } });
    assert.is(res.status, 200);
    assert.is(visitorCookie(res), undefined, 'no visitor cookie');
  }
  await recorder.flush();
  const rows = await visits();
  assert.is(rows.length, 3, 'the views still count');
  assert.ok(rows.every((r) => r.user_id === null && r.visitor_id !== '11111111-2222-4333-8444-555555555555'));
  assert.is(new Set(rows.map((r) => r.visitor_id)).size, 3, 'not linkable to each other');
});

test('not recorded: bots, static files, the API, probes, redirects, errors, POSTs', async () => {
  await clear();
  for (const ua of ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'curl/8.5.0', '',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36', 'python-requests/2.32']) {
    const res = await app.request('/login', { headers: ua ? { 'User-Agent': ua } : {} });
    assert.is(res.status, 200);
    assert.is(visitorCookie(res), undefined, `${ua || 'no UA'}: no cookie`);
  }
  for (const p of ['/static/app.css', '/healthz', '/readyz', '/api/reports', '/nothing-here', '/account', '/browse?type=film']) {
    await app.request(p, { headers: { 'User-Agent': CHROME } });
  }
  await app.request('/theme', { method: 'POST', headers: { 'User-Agent': CHROME, Origin: 'http://localhost', 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'theme=light' });
  await recorder.flush();
  assert.equal(await visits(), []);
  assert.ok(isBot(undefined) && isBot('Slackbot-LinkExpanding 1.0') && !isBot(CHROME));
});

test('referrer classes from the Referer header', () => {
  const cases: [string | undefined, string][] = [
    [undefined, 'direct'], ['not a url', 'direct'], ['http://localhost:3000/browse', 'internal'],
    ['https://www.google.com/search?q=marquee', 'search'], ['https://duckduckgo.com/', 'search'], ['https://www.bing.com/', 'search'],
    ['https://l.facebook.com/l.php', 'social'], ['https://t.co/abc', 'social'], ['https://www.reddit.com/r/movies', 'social'],
    ['https://mail.google.com/mail/u/0/', 'email'], ['https://outlook.live.com/mail/', 'email'],
    ['https://ad.doubleclick.net/ddm/clk', 'ads'], ['https://www.googleadservices.com/pagead/aclk', 'ads'],
    ['https://www.rottentomatoes.com/m/x', 'partner'], ['https://blog.example.org/post', 'partner'],
  ];
  for (const [ref, cls] of cases) assert.is(referrerClass(ref, 'localhost:3000'), cls, String(ref));
});

test('batches: one INSERT per 500 rows, as soon as 500 wait; close() flushes the rest and then drops', async () => {
  await clear();
  const r = new VisitRecorder(t.db, { intervalMs: 60_000, batch: 500, log: () => {} });
  const at = new Date();
  for (let i = 0; i < 1203; i++) r.record({ visitorId: crypto.randomUUID(), userId: null, at, path: `/p/${i}`, referrerClass: 'direct' });
  await r.close();
  assert.is((await t.db.one(`SELECT count(*) AS n FROM visits`))!.n, 1203);
  assert.equal(r.stats, { written: 1203, dropped: 0, failedFlushes: 0 });
  r.record({ visitorId: crypto.randomUUID(), userId: null, at, path: '/late', referrerClass: 'direct' });
  assert.is(r.stats.dropped, 1, 'after close, dropped and counted');
});

test('database down: rows wait up to the bound, the rest are dropped and counted; written once it answers', async () => {
  const dead = createDb('postgres://postgres@127.0.0.1:1/none', { connectionTimeoutMs: 300, onError: () => {} });
  const lines: string[] = [];
  const r = new VisitRecorder(dead, { intervalMs: 60_000, batch: 2, maxBuffered: 5, log: (l) => lines.push(l) });
  const at = new Date();
  for (let i = 0; i < 8; i++) r.record({ visitorId: crypto.randomUUID(), userId: null, at, path: `/down/${i}`, referrerClass: 'direct' });
  await r.flush();
  assert.is(r.pending, 5);
  assert.is(r.stats.dropped, 3);
  assert.ok(r.stats.failedFlushes >= 1);
  assert.ok(lines.some((l) => /dropping new ones/.test(l)) && lines.some((l) => /could not write/.test(l)), lines.join('\n'));
  await r.close();
  await dead.close();
  assert.is(r.stats.dropped, 8);
});

test('main.ts flushes buffered visits on SIGTERM: every page view served is in the table after exit', async () => {
  await clear();
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: t.url, PORT: '0', MARQUEE_DEMO: '0', MARQUEE_ADMIN_PASSWORD: 'correct horse battery staple 42' },
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => { out += d; const m = /ready at (\S+)/.exec(out); if (m) resolve(m[1].replace(/\/$/, '')); });
    child.stderr.on('data', (d) => { out += d; });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/login`, { headers: { 'User-Agent': CHROME } });
    assert.is(res.status, 200);
    await res.text();
  }
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.is(await exited, 0, out);
  assert.is((await t.db.one(`SELECT count(*) AS n FROM visits WHERE path = '/login'`))!.n, 5);
});

test.run();
