// Report engine internals against a real PostgreSQL: catalog validation (file:line), parameters, marts (create,
// re-create on change, refresh in order, history, failure keeps old data, advisory lock across instances, readers
// not blocked), runReport (canonical params, row cap, cache by generation), CSV streaming.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { holdInTransaction, waitForLockWaiter, waitFor } from './helpers/sync.ts';
import { useDatabase } from './helpers/db.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { HttpError } from '../server/errors.ts';
import {
  loadCatalog, CatalogError, ensureMarts, refreshMarts, refreshDue, dueMarts, checkReportSql, runReport, streamCsv,
  martStates, type Catalog, type ResultCache,
} from '../server/reports/engine.ts';
import { martRefreshJobs } from '../server/reports/jobs.ts';
import { nextFire, previousFire } from '../server/reports/cron-time.ts';
import { parseParamDecl, ParamDeclError } from '../server/reports/params.ts';
import { createBasicSources } from './fixtures/reports/basic-data.ts';

const t = useDatabase(test);
const FIXTURES = path.resolve(import.meta.dirname, 'fixtures/reports');
const NOW = new Date('2026-11-26T09:00:00Z');
let catalog: Catalog;
/** The result cache an app keeps (deps.caches.reports), shared by this file's runs. */
const cache: ResultCache = new Map();

const run = (id: string, q = '', role: any = 'analyst', extra: Record<string, unknown> = {}) =>
  runReport(t.db, catalog, id, new URLSearchParams(q), { role, now: NOW, cache, ...extra });

async function rejects(p: Promise<unknown>): Promise<HttpError> {
  try { await p; } catch (e) { if (e instanceof HttpError) return e; throw e; }
  throw new Error('expected an HttpError');
}

async function setControl(sleep: number, fail: boolean) {
  await t.db.query('UPDATE fx_control SET sleep_s = $1, fail = $2', [sleep, fail]);
}

test.before(async () => {
  await createBasicSources(t.db, `VALUES
      ('a', '2026-01-05', 10), ('a', '2026-01-05', 5), ('b', '2026-01-05', 7), ('a', '2026-02-01', 1),
      ('c', '2026-03-01', -2), ('b', '2025-12-31', 100), ('a', '2026-10-01', 3), ('b', '2026-11-02', 4)`);
  catalog = loadCatalog(path.join(FIXTURES, 'basic'));
});

test('catalog: headers, params, marts (declared and detected), dependency order', () => {
  const r = catalog.reports.get('fx_by_kind')!;
  assert.is(r.title, 'Amount by day and kind');
  assert.is(r.definition, 'Sum of amount per day and kind.');
  assert.equal(r.params.map((p) => `${p.name}:${p.type}`), ['from:date', 'to:date', 'kinds:multi', 'min_n:int', 'only_positive:boolean', 'order:enum']);
  assert.equal(r.bindOrder, ['from', 'to', 'kinds', 'min_n', 'only_positive', 'order']);
  assert.match(r.sql, /'it''s :not_a_param' -- :nor_this/, 'parameters inside strings and comments are left alone');
  assert.equal(catalog.reports.get('fx_admin_only')!.marts, ['mart_fx_total'], 'a mart read in the SQL counts without @marts');
  assert.equal(catalog.reports.get('fx_admin_only')!.allMarts, ['mart_fx_daily', 'mart_fx_total']);
  assert.equal(catalog.martOrder, ['mart_fx_daily', 'mart_fx_total']);
  assert.equal(catalog.reports.get('fx_sidecar')!.chart, 'sidecar');
});

test('startup validation names file:line and the reason', () => {
  const problems = (dir: string) => {
    try { loadCatalog(path.join(FIXTURES, dir)); } catch (e) { if (e instanceof CatalogError) return e.problems; throw e; }
    throw new Error(`${dir} loaded without errors`);
  };
  const p1 = problems('bad-param');
  assert.ok(p1.some((p) => /bad-param\/undeclared\.sql:7 parameter :plan is used but not declared/.test(p)), p1.join('\n'));
  assert.ok(p1.some((p) => /bad-param\/bad_maxage\.sql:3 @maxage must be a whole number from 1 to 3600/.test(p)), p1.join('\n'));
  assert.ok(p1.some((p) => /bad-param\/bad_pagesize\.sql:3 @pagesize must be a whole number from 1 to 3/.test(p)), p1.join('\n'));
  assert.ok(p1.some((p) => /bad-param\/own_page\.sql:3 @pagesize adds the parameter page: the report must not declare its own/.test(p)), p1.join('\n'));
  const p2 = problems('bad-mart');
  assert.ok(p2.some((p) => /maxage_on_catalog\.sql:3 @maxage is for live-SQL reports/.test(p)), p2.join('\n'));
  assert.ok(p2.some((p) => /bad-mart\/unknown_mart\.sql:2 unknown mart mart_nowhere/.test(p)), p2.join('\n'));
  assert.ok(p2.some((p) => /unknown_mart\.sql:4 reads unknown mart mart_nowhere/.test(p)), p2.join('\n'));
  const p3 = problems('bad-chart');
  assert.ok(p3.some((p) => /broken_chart\.sql:3 chart unknown chart mark "pie"/.test(p)), p3.join('\n'));
  assert.ok(p3.some((p) => /broken_sidecar\.vl\.json:1 chart does not compile with vega-lite/.test(p)), p3.join('\n'));
  assert.match(new CatalogError(p3).message, /^invalid report files:\n  /);
  const p4 = problems('bad-incremental');
  assert.ok(p4.some((p) => /mart_bad_window\.sql:4 @incremental month must be one of the @unique columns/.test(p)), p4.join('\n'));
  assert.ok(p4.some((p) => /mart_bad_window\.sql:5 marts take one parameter, :since \(got :kind\)/.test(p)), p4.join('\n'));
  assert.ok(p4.some((p) => /mart_no_window\.sql:4 :since is the lower bound of an incremental refresh/.test(p)), p4.join('\n'));
  assert.ok(p4.some((p) => /mart_bad_planner\.sql:4 @planner takes enable_<plan node>=on\|off settings \(got "work_mem=1GB"\)/.test(p)), p4.join('\n'));
  assert.ok(p4.some((p) => /mart_bad_planner\.sql:4 @planner .*\(got "enable_sort=maybe"\)/.test(p)), p4.join('\n'));
});

test('ensureMarts creates the marts empty; reports answer 503 until the first refresh', async () => {
  const r = await ensureMarts(t.db, catalog);
  assert.equal(r.created, ['mart_fx_daily', 'mart_fx_total']);
  assert.equal((await ensureMarts(t.db, catalog)).created, [], 'idempotent');
  const e = await rejects(run('fx_by_kind'));
  assert.is(e.status, 503);
  assert.match(e.message, /not been refreshed/);
  await checkReportSql(t.db, catalog);
});

test('refreshMarts: dependency order, history rows, generations', async () => {
  const out = await refreshMarts(t.db, catalog, { trigger: 'startup' });
  assert.ok(out.ran);
  assert.equal(out.results.map((r) => [r.mart, r.ok]), [['mart_fx_daily', true], ['mart_fx_total', true]]);
  assert.is(out.results[0].rows, 7);
  const hist = await t.db.query(`SELECT mart, trigger, rows, error, generation, finished_at >= started_at AS ordered, duration_ms FROM mart_refreshes ORDER BY id`);
  assert.equal(hist.map((h) => [h.mart, h.trigger, h.rows, h.error, h.ordered]), [
    ['mart_fx_daily', 'startup', 7, null, true], ['mart_fx_total', 'startup', 3, null, true]]);
  const states = await martStates(t.db);
  assert.is(states.get('mart_fx_daily')!.generation, hist[0].generation);
  assert.ok(states.get('mart_fx_daily')!.as_of instanceof Date);
});

test('runReport: defaults, spec with data inlined, freshness', async () => {
  const r = await run('fx_by_kind');
  assert.equal(r.rows, [
    { day: '2026-01-05', kind: 'a', amount: 15, n: 2 }, { day: '2026-01-05', kind: 'b', amount: 7, n: 1 },
    { day: '2026-02-01', kind: 'a', amount: 1, n: 1 }, { day: '2026-03-01', kind: 'c', amount: -2, n: 1 },
    { day: '2026-10-01', kind: 'a', amount: 3, n: 1 }, { day: '2026-11-02', kind: 'b', amount: 4, n: 1 }]);
  assert.is(r.rowCount, 6);
  assert.is(r.query, '');
  assert.equal(r.params, { from: '2026-01-01', to: '2026-12-31', kinds: null, min_n: '0', only_positive: 'false', order: 'day' });
  assert.equal(r.spec.data.values, r.rows);
  assert.is(r.spec.mark.type, 'bar');
  assert.is(r.stale, false);
  assert.ok(Date.parse(r.asOf) <= Date.now());
  assert.is(r.nextRefresh, '2026-11-26T09:05:00.000Z', 'next */5 fire after now');
  const live = await run('fx_monthly');
  assert.equal(live.params, { from: '2026-09', to: '2026-11' }, 'relative month defaults resolve against now');
  assert.equal(live.rows, [{ month: '2026-10-01', n: 1 }, { month: '2026-11-01', n: 1 }]);
  assert.is(live.asOf, NOW.toISOString());
  assert.is(live.nextRefresh, null);
});

test('runReport: every parameter type binds; canonical query omits defaults, sorts keys and values', async () => {
  const r = await run('fx_by_kind', 'order=amount&kinds=b,a&min_n=0&to=2026-12-31&only_positive=1&from=2026-01-02');
  assert.is(r.query, 'from=2026-01-02&kinds=a&kinds=b&only_positive=true&order=amount');
  assert.equal(r.rows.map((x) => [x.kind, x.amount]), [['a', 15], ['b', 7], ['b', 4], ['a', 3], ['a', 1]]);
  const again = await run('fx_by_kind', 'kinds=a&kinds=b&from=&min_n=2');
  assert.is(again.query, 'kinds=a&kinds=b&min_n=2', 'empty form fields are absent');
  assert.equal(again.rows.map((x) => x.amount), [15]);
  const plans = await run('fx_plans', 'plan=premium&plan=standard');
  assert.equal(plans.rows, [{ code: 'standard', price: 17.99 }, { code: 'premium', price: 24.99 }]);
  const explicitRelative = await run('fx_monthly', 'from=2026-09');
  assert.is(explicitRelative.query, 'from=2026-09', 'an explicit value equal to a relative default stays: the URL must mean the same later');
});

test('parameter fuzzing: malformed values of every type are 400 naming the field', async () => {
  const bad: [string, string, string][] = [
    ['fx_by_kind', 'from=2026-13-01', 'from'], ['fx_by_kind', 'from=2026-02-30', 'from'], ['fx_by_kind', 'from=yesterday', 'from'],
    ['fx_by_kind', 'from=2026-1-1', 'from'], ['fx_by_kind', "from=2026-01-01' OR 1=1", 'from'], ['fx_by_kind', 'to=0000-01-01', 'to'],
    ['fx_by_kind', 'from=2026-06-01&to=2026-01-01', 'to'], ['fx_by_kind', 'from=2026-01-01&from=2026-02-01', 'from'],
    ['fx_by_kind', 'min_n=abc', 'min_n'], ['fx_by_kind', 'min_n=1.5', 'min_n'], ['fx_by_kind', 'min_n=101', 'min_n'],
    ['fx_by_kind', 'min_n=-1', 'min_n'], ['fx_by_kind', 'min_n=99999999999999999999', 'min_n'], ['fx_by_kind', 'min_n=1e3', 'min_n'],
    ['fx_by_kind', 'only_positive=yes', 'only_positive'], ['fx_by_kind', 'order=random()', 'order'], ['fx_by_kind', 'kinds=d', 'kinds'],
    ['fx_by_kind', 'kinds=a&kinds=%00', 'kinds'], ['fx_by_kind', 'bogus=1', 'bogus'], ['fx_monthly', 'from=2026-00', 'from'],
    ['fx_monthly', 'to=26-01', 'to'], ['fx_monthly', 'from=2026-01-01', 'from'], ['fx_plans', 'plan=gold', 'plan'],
    ['fx_plans', `plan=${'x'.repeat(5000)}`, 'plan'], ['fx_capped', 'n=0', 'n'], ['fx_capped', 'n=100001', 'n'], ['fx_capped', 'n=%E2%80%8B7', 'n'],
  ];
  for (const [id, q, field] of bad) {
    const e = await rejects(run(id, q, 'admin'));
    assert.is(e.status, 400, `${id}?${q}`);
    assert.ok(e.fields?.[field], `${id}?${q} names ${field}: ${JSON.stringify(e.fields)}`);
  }
  // random garbage never escapes as anything but 400
  const alphabet = ['', '-', '0', '9', 'a', '%', "'", ',', ' ', '2026', '-01', '\u0000', 'é', 'true', 'e', '.'];
  let seed = 7;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  for (let i = 0; i < 150; i++) {
    const name = ['from', 'to', 'kinds', 'min_n', 'only_positive', 'order'][rnd(6)];
    const value = Array.from({ length: 1 + rnd(5) }, () => alphabet[rnd(alphabet.length)]).join('');
    try { await run('fx_by_kind', new URLSearchParams([[name, value]]).toString(), 'admin'); } catch (e) {
      assert.ok(e instanceof HttpError && e.status === 400 && e.fields?.[name], `${name}=${JSON.stringify(value)}: ${e}`);
    }
  }
});

test('role is checked before any SQL runs', async () => {
  let calls = 0;
  const counted = new Proxy(t.db, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' && ['query', 'one', 'tx', 'readTx', 'withClient', 'copyOut', 'copyIn'].includes(String(prop))
        ? (...a: any[]) => { calls++; return v.apply(target, a); } : v;
    },
  }) as Db;
  for (const [id, role] of [['fx_admin_only', 'analyst'], ['fx_admin_only', 'manager'], ['fx_plans', 'manager'], ['fx_by_kind', 'subscriber']] as const) {
    const e = await rejects(runReport(counted, catalog, id, new URLSearchParams('plan=premium'), { role, now: NOW }));
    assert.is(e.status, 403, `${role} on ${id}`);
    const c = await rejects(streamCsv(counted, catalog, id, new URLSearchParams(), { role, now: NOW }));
    assert.is(c.status, 403);
  }
  assert.is(calls, 0, 'no query reached the database');
  assert.is((await runReport(counted, catalog, 'fx_admin_only', new URLSearchParams(), { role: 'admin', now: NOW })).rowCount, 3);
  assert.ok(calls > 0);
});

test('row cap: rows beyond @rowcap are cut and flagged; @timeout cancels a slow report with 503', async () => {
  const r = await run('fx_capped', 'n=10');
  assert.equal(r.rows, [{ i: 1 }, { i: 2 }, { i: 3 }]);
  assert.is(r.truncated, true);
  assert.is(r.rowCap, 3);
  assert.is((await run('fx_capped', 'n=3')).truncated, false);
  const slow = { ...catalog.reports.get('fx_capped')!, id: 'fx_slow', timeoutMs: 50, sql: 'SELECT 1 AS i FROM pg_sleep(2)', bindOrder: [] };
  const withSlow = { ...catalog, reports: new Map([...catalog.reports, ['fx_slow', slow]]) };
  const e = await rejects(runReport(t.db, withSlow, 'fx_slow', new URLSearchParams(), { role: 'admin', now: NOW }));
  assert.is(e.status, 503);
  assert.match(e.message, /50 ms/);
});

test('result cache: a hit until the generation changes; the ETag follows the generation', async () => {
  // the cache is opt-in (deps.caches.reports in the app): give these runs one
  const cache: ResultCache = new Map();
  const run = (id: string, q = '', role: any = 'analyst', extra: Record<string, unknown> = {}) =>
    runReport(t.db, catalog, id, new URLSearchParams(q), { role, now: NOW, cache, ...extra });
  const a = await run('fx_by_kind', 'kinds=a');
  const b = await run('fx_by_kind', 'kinds=a');
  assert.is(b.cached, true);
  assert.is(b.etag, a.etag);
  assert.is((await run('fx_by_kind', 'kinds=b')).etag === a.etag, false, 'other params, other ETag');
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('a', '2026-04-01', 50)`);
  assert.is((await run('fx_by_kind', 'kinds=a')).rowCount, a.rowCount, 'the mart is a snapshot until refreshed');
  await refreshMarts(t.db, catalog, { only: ['mart_fx_daily'] });
  const c = await run('fx_by_kind', 'kinds=a');
  assert.is(c.cached, false);
  assert.is(c.rowCount, a.rowCount + 1);
  assert.ok(c.etag !== a.etag);
  assert.is((await run('fx_by_kind', 'kinds=a', 'analyst', { cache: false })).cached, false);
});

test('live result cache (@maxage): served until that old, read again ahead of it once, one read for concurrent misses', async () => {
  const cache: ResultCache = new Map();
  const at = (s: number, q = '', extra: Record<string, unknown> = {}) =>
    runReport(t.db, catalog, 'fx_live', new URLSearchParams(q), { role: 'analyst', now: new Date(NOW.getTime() + s * 1000), cache, ...extra });
  const total = (r: { rows: any[] }) => Number(r.rows.find((x) => x.kind === 'c')?.total ?? 0);
  // five requests at once on an empty cache: one read, every caller gets its result
  const first = await Promise.all([0, 0, 0, 0, 0].map(() => at(0)));
  assert.ok(first.every((r) => r.rows === first[0].rows && !r.cached), 'one shared read');
  assert.is(first[0].asOf, NOW.toISOString());
  const before = total(first[0]);
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('c', '2026-04-01', 1000)`);
  const young = await at(4);
  assert.equal([young.cached, total(young), young.asOf, young.etag], [true, before, NOW.toISOString(), first[0].etag], 'under half its max age: the cached rows');
  // past half of it: the cached rows now, and one read in the background for the next caller
  const ahead = await Promise.all([at(6), at(6), at(6)]);
  assert.ok(ahead.every((r) => r.cached && total(r) === before));
  await waitFor('the read ahead to land', async () => (await at(7)).asOf !== NOW.toISOString());
  const next = await at(7);
  assert.equal([next.cached, total(next), next.asOf], [true, before + 1000, new Date(NOW.getTime() + 6000).toISOString()]);
  assert.ok(next.etag !== first[0].etag, 'the ETag follows the rows');
  // past its max age: never served; the caller waits for a fresh read
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('c', '2026-04-01', 1)`);
  const old = await at(16.5);
  assert.equal([old.cached, total(old), old.asOf], [false, before + 1001, new Date(NOW.getTime() + 16500).toISOString()]);
  assert.is((await at(16.5, 'kind=a')).cached, false, 'other parameters, other entry');
  assert.is((await at(17, '', { cache: false })).cached, false, 'no cache: every call reads');
  // a mart-backed or @catalog report is keyed by generation and never takes @maxage (see the validation test)
  assert.is(catalog.reports.get('fx_by_kind')!.maxAgeMs, 0);
  await t.db.query(`DELETE FROM fx_source WHERE kind = 'c' AND day = '2026-04-01'`); // the later tests' data as it was
});

test('a failed refresh keeps the last good data, marks the report stale, skips dependents; the next success clears it', async () => {
  await refreshMarts(t.db, catalog);
  const before = await run('fx_admin_only', '', 'admin');
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('c', '2026-05-01', 1000)`);
  await setControl(0, true);
  const out = await refreshMarts(t.db, catalog);
  assert.equal(out.results.map((r) => [r.mart, r.ok, !!r.skipped]), [['mart_fx_daily', false, false], ['mart_fx_total', false, true]]);
  assert.match(out.results[0].error!, /division by zero/);
  const after = await run('fx_admin_only', '', 'admin');
  assert.equal(after.rows, before.rows, 'old data still served');
  assert.is(after.stale, true);
  assert.ok(after.etag !== before.etag, 'stale is part of the ETag');
  assert.is((await run('fx_by_kind')).stale, true);
  const h = await t.db.one(`SELECT error, generation, finished_at IS NOT NULL AS finished FROM mart_refreshes WHERE mart = 'mart_fx_daily' ORDER BY id DESC LIMIT 1`);
  assert.match(h!.error, /division by zero/);
  assert.is(h!.generation, null);
  assert.ok(h!.finished);
  await setControl(0, false);
  await refreshMarts(t.db, catalog);
  const fixed = await run('fx_admin_only', '', 'admin');
  assert.is(fixed.stale, false);
  assert.ok(fixed.rows.some((r) => r.kind === 'c' && Number(r.amount) === 998));
});

test('two instances refresh at once: the mart is refreshed once, the other run is skipped', async () => {
  const other = createDb(t.url, { max: 4 });
  // The first refresh is held mid-run (inside the advisory lock, before its commit) by a row lock on its report_marts
  // row; the second starts only once the first provably waits there.
  const held = await holdInTransaction(t.url, [`SELECT 1 FROM report_marts WHERE name = 'mart_fx_daily' FOR NO KEY UPDATE`]);
  let releasedHeld = false;
  try {
    const before = (await t.db.one(`SELECT count(*) AS n FROM mart_refreshes WHERE mart = 'mart_fx_daily'`))!.n;
    const x = refreshMarts(t.db, catalog);
    await waitForLockWaiter(t.db, 'UPDATE report_marts');
    const y = await refreshMarts(other, catalog);
    assert.equal(y, { ran: false, results: [] }, 'the overlapping run is skipped');
    await held.release();
    releasedHeld = true;
    assert.is((await x).ran, true);
    const after = (await t.db.one(`SELECT count(*) AS n FROM mart_refreshes WHERE mart = 'mart_fx_daily'`))!.n;
    assert.is(after, before + 1);
    // scheduled runs: a second instance firing for the same tick finds nothing due
    // the last refreshes happened before the latest scheduled fire time: both marts are due
    await t.db.query(`UPDATE mart_refreshes SET started_at = started_at - interval '10 minutes', finished_at = finished_at - interval '10 minutes'`);
    const tick = new Date();
    const due = await dueMarts(t.db, catalog, tick);
    assert.equal(due, ['mart_fx_daily', 'mart_fx_total']);
    const first = await refreshDue(t.db, catalog, tick);
    assert.equal(first.results.map((r) => r.mart), ['mart_fx_daily', 'mart_fx_total']);
    const second = await refreshDue(other, catalog, tick);
    assert.equal(second, { ran: true, results: [] });
  } finally {
    if (!releasedHeld) await held.release();
    await other.close();
  }
});

test('a reader is not blocked while a mart refreshes (one DELETE + INSERT transaction)', async () => {
  await t.db.query(`INSERT INTO fx_source (kind, day, amount) VALUES ('c', '2026-06-01', 77)`);
  const before = await run('fx_by_kind', 'kinds=c', 'analyst', { cache: false });
  // Hold the refresh after its DELETE and INSERT into the mart, before its commit (it waits on the report_marts row).
  const held = await holdInTransaction(t.url, [`SELECT 1 FROM report_marts WHERE name = 'mart_fx_daily' FOR NO KEY UPDATE`]);
  const refreshing = refreshMarts(t.db, catalog, { only: ['mart_fx_daily'] });
  try {
    await waitForLockWaiter(t.db, 'UPDATE report_marts');
    const r = await run('fx_by_kind', 'kinds=c', 'analyst', { cache: false });
    assert.equal(r.rows, before.rows, 'the reader sees the last committed rows, not the refresh\'s uncommitted ones');
    const still = await t.db.one(`SELECT count(*) AS n FROM mart_refreshes WHERE mart = 'mart_fx_daily' AND finished_at IS NULL`);
    assert.is(still!.n, 1, 'the read finished while the refresh was still running');
  } finally {
    await held.release();
    assert.ok((await refreshing).results[0].ok);
  }
  assert.is((await run('fx_by_kind', 'kinds=c', 'analyst', { cache: false })).rowCount, before.rowCount + 1, 'its rows after commit');
});

test('paging (@pagesize): a page parameter within @rowcap, each page its own answer; CSV is every page', async () => {
  const r = catalog.reports.get('fx_paged')!;
  assert.equal([r.pageSize, r.rowCap], [2, 5]);
  assert.equal(r.params.map((p) => `${p.name}:${p.type}:${p.min}-${p.max}`), ['n:int:1-100', 'page:int:1-3'], 'the engine adds page, up to the last page within the cap');
  const page = async (q: string) => { const a = await run('fx_paged', q); return [a.page, a.rows.map((x) => x.i), a.truncated, a.rowCap, a.query]; };
  assert.equal(await page(''), [1, [1, 2], true, 2, ''], 'page 1 is the default; more rows follow');
  assert.equal(await page('page=1'), [1, [1, 2], true, 2, ''], 'page=1 is the default: left out of the canonical query');
  assert.equal(await page('page=2'), [2, [3, 4], true, 2, 'page=2']);
  assert.equal(await page('page=3'), [3, [5], true, 2, 'page=3'], 'the last page ends at the cap, and says rows were cut');
  assert.equal(await page('n=3&page=2'), [2, [3], false, 2, 'n=3&page=2'], 'the last row: nothing follows');
  assert.equal(await page('n=2&page=3'), [3, [], false, 2, 'n=2&page=3'], 'past the last row: an empty page');
  for (const q of ['page=4', 'page=0', 'page=x', 'page=1&page=2']) {
    const e = await rejects(run('fx_paged', q));
    assert.is(e.status, 400, q);
    assert.ok(e.fields?.page, q);
  }
  const unpaged = await run('fx_capped', 'n=10');
  assert.is(unpaged.page, null, 'a report without @pagesize has no pages');
  const csv = await streamCsv(t.db, catalog, 'fx_paged', new URLSearchParams('page=2'), { role: 'admin', now: NOW });
  assert.equal([s(csv.rowCap), s(csv.truncated)], ['5', 'true']);
  assert.is(await new Response(csv.body).text(), 'i\r\n1\r\n2\r\n3\r\n4\r\n5\r\n', 'CSV: every row up to @rowcap, whatever the page');
});
const s = (v: unknown) => String(v);

test('CSV streams through a cursor; the cap is announced before the body', async () => {
  const s = await streamCsv(t.db, catalog, 'fx_capped', new URLSearchParams('n=10'), { role: 'admin', now: NOW });
  assert.is(s.truncated, true);
  assert.is(s.rowCap, 3);
  assert.is(await new Response(s.body).text(), 'i\r\n1\r\n2\r\n3\r\n');
  const all = await streamCsv(t.db, catalog, 'fx_by_kind', new URLSearchParams('kinds=b'), { role: 'admin', now: NOW });
  assert.is(all.truncated, false);
  assert.is(await new Response(all.body).text(), 'day,kind,amount,n\r\n2026-01-05,b,7,1\r\n2026-11-02,b,4,1\r\n');
  const none = await streamCsv(t.db, catalog, 'fx_by_kind', new URLSearchParams('kinds=b&from=2026-12-01'), { role: 'admin', now: NOW });
  assert.is(await new Response(none.body).text(), 'day,kind,amount,n\r\n', 'an empty result still has its header line');
  await waitFor('every connection to go back to the pool', () => t.db.pool.totalCount - t.db.pool.idleCount === 0);
});

test('ensureMarts re-creates a mart whose file changed, and the marts that read it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-reports-'));
  try {
    fs.cpSync(path.join(FIXTURES, 'basic'), dir, { recursive: true });
    const file = path.join(dir, 'marts', 'mart_fx_daily.sql');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('count(*)::int AS n', 'count(*)::int AS n, max(s.amount) AS top'));
    const changed = loadCatalog(dir);
    const genBefore = (await martStates(t.db)).get('mart_fx_daily')!.generation;
    const r = await ensureMarts(t.db, changed);
    assert.equal(r.recreated, ['mart_fx_daily', 'mart_fx_total'], 'and the mart that reads it');
    assert.equal(r.created, []);
    assert.ok((await martStates(t.db)).get('mart_fx_daily')!.generation > genBefore);
    assert.is((await rejects(runReport(t.db, changed, 'fx_by_kind', new URLSearchParams(), { role: 'admin', now: NOW }))).status, 503);
    await refreshMarts(t.db, changed);
    const top = await t.db.query('SELECT top FROM mart_fx_daily ORDER BY day, kind LIMIT 1');
    assert.is(top[0].top, 100);
    // and back to the original definition for the rest of the file
    assert.equal((await ensureMarts(t.db, catalog)).recreated, ['mart_fx_daily', 'mart_fx_total']);
    await refreshMarts(t.db, catalog);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a mart left as a materialized view by an earlier version is replaced by a table', async () => {
  await t.db.query(`DROP TABLE mart_fx_total`);
  await t.db.query(`CREATE MATERIALIZED VIEW mart_fx_total AS SELECT 'x'::text AS kind, 1::numeric AS amount, 1 AS n`);
  assert.equal((await ensureMarts(t.db, catalog)).recreated, ['mart_fx_total']);
  assert.is((await t.db.one(`SELECT relkind FROM pg_class WHERE relname = 'mart_fx_total'`))!.relkind, 'r');
  const out = await refreshMarts(t.db, catalog);
  assert.equal(out.results.map((r) => [r.mart, r.ok, r.mode]), [['mart_fx_daily', true, 'full'], ['mart_fx_total', true, 'full']]);
  assert.ok((await t.db.query(`SELECT kind FROM mart_fx_total`)).every((r) => r.kind !== 'x'));
});

test('schedules: one job per distinct @refresh, next/previous fire times in UTC', async () => {
  const jobs = martRefreshJobs(catalog);
  assert.equal(jobs.map((j) => j.schedule), ['*/5 * * * *', '1-59/5 * * * *']);
  assert.is(nextFire('1-59/5 * * * *', new Date('2026-11-26T09:01:00Z'))!.toISOString(), '2026-11-26T09:06:00.000Z');
  assert.is(previousFire('1-59/5 * * * *', new Date('2026-11-26T09:01:00Z'))!.toISOString(), '2026-11-26T09:01:00.000Z');
  assert.is(nextFire('0 3 * * 1', new Date('2026-11-26T09:00:00Z'))!.toISOString(), '2026-11-30T03:00:00.000Z', 'next Monday 03:00');
  assert.is(previousFire('0 3 1 * *', new Date('2026-11-26T09:00:00Z'))!.toISOString(), '2026-11-01T03:00:00.000Z');
  await t.db.query(`UPDATE mart_refreshes SET started_at = started_at - interval '1 hour'`);
  const out = await jobs[0].run(t.db, new Date()) as Awaited<ReturnType<typeof refreshDue>>;
  assert.equal(out.results.map((r) => r.mart), ['mart_fx_daily', 'mart_fx_total'], 'a job refreshes every due mart, in order');
  assert.is(out.results.every((r) => r.ok), true);
  assert.is((await t.db.one(`SELECT trigger FROM mart_refreshes ORDER BY id DESC LIMIT 1`))!.trigger, 'schedule');
});

test('parameter declarations are checked', () => {
  const bad = ['from', 'from datetime', 'Bad month', 'n int min=x', 'n int default=5 max=3', 'k enum', 'k enum values="a,b" default=c',
    'p multi', 'p multi lookup=users', 'p multi lookup=plans values="a"', 'd date default=-12q', 'n int colour=red', 'n int default=1 extra'];
  for (const text of bad) assert.throws(() => parseParamDecl(text, 1), (e: Error) => e instanceof ParamDeclError, text);
  assert.equal(parseParamDecl('from month default=-12m label="Start month"', 3),
    { name: 'from', type: 'month', label: 'Start month', default: '-12m', line: 3 });
});

test('npm start refuses to start on an invalid report file, naming file:line', async () => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: path.resolve(import.meta.dirname, '..'), encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, DATABASE_URL: t.url, PORT: '0', MARQUEE_DEMO: '0', MARQUEE_REPORTS_DIR: path.join(FIXTURES, 'bad-chart') },
  });
  assert.is(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /could not start: invalid report files:\n\s+test\/fixtures\/reports\/bad-chart\/broken_chart\.sql:3 chart unknown chart mark "pie"/);
  assert.not.match(r.stdout, /ready at/);
});

test('a report whose SQL does not plan is reported as file:line at start', async () => {
  const bad = loadCatalog(path.join(FIXTURES, 'bad-sql'));
  try {
    await checkReportSql(t.db, bad);
    assert.unreachable('should fail');
  } catch (e: any) {
    assert.match(e.message, /bad-sql\/bad_column\.sql:4 column "no_such_column" does not exist/);
  }
});

test('mart-backed reports run with one generic plan; live SQL keeps PostgreSQL\'s choice', async () => {
  assert.is((await t.db.tx((q) => q.one<{ m: string }>(`SELECT current_setting('plan_cache_mode') AS m`), { genericPlans: true }))!.m, 'force_generic_plan');
  assert.is((await t.db.one<{ m: string }>(`SELECT current_setting('plan_cache_mode') AS m`))!.m, 'auto', 'for that transaction only');
  const seen: [string, boolean | undefined][] = [];
  let id = '';
  const spy: Db = { ...t.db, readTx: (fn, o) => { seen.push([id, o?.genericPlans]); return t.db.readTx(fn, o); } };
  for (id of ['fx_by_kind', 'fx_plans']) await runReport(spy, catalog, id, new URLSearchParams(), { role: 'admin', now: NOW, cache: false });
  assert.equal(seen, [['fx_by_kind', true], ['fx_plans', false]]);
});

test('@planner settings hold for the refresh transaction only', async () => {
  const cat = loadCatalog(path.join(FIXTURES, 'planner'));
  assert.equal(cat.marts.get('mart_fx_setting')!.planner, [['enable_sort', 'off'], ['enable_hashjoin', 'off'], ['enable_material', 'on']]);
  await ensureMarts(t.db, cat);
  const out = await refreshMarts(t.db, cat, { trigger: 'manual' });
  assert.ok(out.results[0].ok, out.results[0].error);
  assert.equal(await t.db.query('SELECT v FROM mart_fx_setting'), [{ v: 'off,off,on' }]);
  assert.equal(await t.db.query(`SELECT current_setting('enable_sort') AS s`), [{ s: 'on' }], 'not left on the pooled connection');
});

test.run();
