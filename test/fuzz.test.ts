// Property-based fuzzing (fast-check) of what users and files send in: every report parameter over HTTP, every POST
// form of the route table signed in with a role it allows (same Origin: the CSRF guard passes), and the titles CSV
// loader on malformed files. The properties: never a 5xx / a crash; a refused input (4xx, or the loader's
// TitlesInputError) leaves the database as it was. A fixed seed makes a run repeatable; a failure prints the seed,
// the path and the shrunk counterexample (re-run with them in fc.assert's options to reproduce).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, TEST_ORIGIN } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { ROUTES, type Role, type RouteRule } from '../server/auth/access.ts';
import { isApi } from '../server/errors.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { TitlesInputError } from '../etl/titles/errors.ts';
import { COLUMNS } from '../etl/titles/header.ts';

const t = useDatabase(test);
const SEED = 20_2026;
const runs = (numRuns: number) => ({ seed: SEED, numRuns });

let app: ReturnType<typeof createApp>;
let catalog: Catalog;
const cookies = new Map<Role, string>();
let targetUserId = 0;
let titleId = 0;

test.before(async () => {
  app = createApp({ db: t.db, log: () => {} });
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog); // reports answer as in service, not 503 "not refreshed yet"
  for (const role of ['admin', 'manager', 'analyst', 'subscriber'] as Role[]) {
    cookies.set(role, await sessionCookie(t.db, (await createUser(t.db, { role })).id));
  }
  targetUserId = (await createUser(t.db, { role: 'subscriber' })).id;
  titleId = (await t.db.one<{ id: number }>(sql`INSERT INTO titles (show_id, type, title, release_year, rating, duration_minutes)
    VALUES ('fuzz1', 'Movie', 'Fuzz Film', 2020, 'PG', 100) RETURNING id`))!.id;
});

// ── values ──────────────────────────────────────────────────────────────────────────────────────────────────────────
/** Valid-looking, invalid, huge and unicode strings: what a form field or a query parameter may hold. */
const text = fc.oneof(
  fc.constantFrom('', ' ', '0', '-1', '1', '20', '100', '101', '2147483648', '-9223372036854775809', '1e309', 'NaN',
    'Infinity', 'null', 'undefined', 'true', 'false', '[]', '{}', '2024-02-29', '2023-02-29', '2026-13-01', '2026-01',
    '2026-00', '0000-01', '9999-12', '275760-09', '-30d', '-12m', '0m', 'today', '1/2/2021', 'Movie', 'TV Show', 'Dramas',
    'United States', 'US', 'basic', 'standard', 'premium', 'admin', 'analyst', 'subscriber', 'active', 'disabled',
    'report:mrr_trend', 'dashboard:executive_overview', 'report:nope', "'; DROP TABLE users; --", '$1', ':from', '\\',
    '%', '%00', '\u0000', 'a\u0000b', '\uFEFF', '\uD800', '\u202E', '😀', 'Ωmega', 'ｆｕｌｌ', '\r\n', '<script>alert(1)</script>',
    'a@b.c', 'x'.repeat(10_000), '9'.repeat(400), '4242 4242 4242 4242', '12/39', '00/00'),
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.integer().map(String),
  fc.double().map(String),
  fc.tuple(fc.date({ noInvalidDate: true }), fc.constantFrom(7, 10, 24)).map(([d, n]) => d.toISOString().slice(0, n)),
);

function assertNo5xx(res: Response, label: string, body: string) {
  if (res.status >= 500) throw new Error(`${label}: ${res.status} ${body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
}

// ── (a) every report parameter ────────────────────────────────────────────────────────────────────────────────────
test('every report × every parameter, generated values and repeated keys: never a 5xx', async () => {
  const reports = [...catalog.reports.values()];
  assert.ok(reports.length > 20, `${reports.length} reports`);
  for (const r of reports) {
    const names = [...r.params.map((p) => p.name), 'unknown_param'];
    const valid = r.params.flatMap((p) => [p.default ?? '', p.min ?? '', p.max ?? '', ...(p.values ?? [])]);
    const pair = fc.tuple(fc.constantFrom(...names), fc.oneof(text, ...(valid.length ? [fc.constantFrom(...valid)] : [])));
    const arb = fc.record({
      pairs: fc.array(pair, { minLength: 1, maxLength: 6 }), // repeated keys happen: the names are few
      suffix: fc.constantFrom('', '.json', '.csv'),
      raw: fc.constantFrom('', '&%', '&%zz=1', '&from=%C0%AF', '&to=%FF%FE', '&=', '&&&'),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ pairs, suffix, raw }) => {
      const q = new URLSearchParams();
      for (const [k, v] of pairs) q.append(k, v);
      const url = `/api/reports/${r.id}${suffix}?${q}${raw}`;
      const res = await app.request(url, { headers: { Cookie: cookies.get(r.roles[0])! } });
      assertNo5xx(res, `GET ${url}`, await res.text());
    }), runs(6));
    // the page too (its parameter form renders what it was given)
    await fc.assert(fc.asyncProperty(fc.array(pair, { minLength: 1, maxLength: 4 }), async (pairs) => {
      const q = new URLSearchParams(pairs);
      const res = await app.request(`/reports/${r.id}?${q}`, { headers: { Cookie: cookies.get(r.roles[0])! } });
      assertNo5xx(res, `GET /reports/${r.id}?${q}`, await res.text());
    }), runs(2));
  }
});

// ── (b) every POST form ────────────────────────────────────────────────────────────────────────────────────────────
/** The fields each POST row reads (a row missing here fails the test: add its fields when you add a form). */
const FIELDS: Record<string, string[]> = {
  'POST /reports/refresh': ['report', 'next'],
  'POST /api/marts/refresh': ['marts'],
  'POST /theme': ['theme', 'next'],
  'POST /login': ['email', 'password', 'next'],
  'POST /logout': [],
  'POST /signup': ['display_name', 'email', 'password', 'confirm_password', 'next'],
  'POST /signup/confirm': ['token'],
  'POST /account': ['display_name'],
  'POST /account/password': ['current_password', 'new_password', 'confirm_password'],
  'POST /account/sign-out-everywhere': [],
  'POST /subscribe': ['plan', 'card_number', 'exp', 'cvc', 'idempotency_key'],
  'POST /account/upgrade': ['plan', 'idempotency_key'],
  'POST /account/downgrade': ['plan', 'idempotency_key'],
  'POST /account/cancel': ['idempotency_key'],
  'POST /account/resume': ['idempotency_key'],
  'POST /account/card': ['card_number', 'exp', 'cvc', 'idempotency_key'],
  'POST /admin/users': ['email', 'display_name', 'role'],
  'POST /admin/users/:id': ['display_name', 'role', 'status', 'email'],
  'POST /admin/users/:id/reset-password': [],
  'POST /admin/users/:id/disable': [],
  'POST /admin/users/:id/enable': [],
  'POST /admin/users/:id/sign-out': [],
  'POST /admin/subscribers/:id/refund': ['payment_id', 'amount', 'idempotency_key'],
  'POST /admin/subscribers/:id/cancel': ['idempotency_key'],
  'POST /api/play/:titleId/progress': ['position', 'duration'],
  'POST /embeds': ['resource', 'locked', 'free', 'days', 'origin'],
  'POST /embeds/revoke': ['id'],
  'POST /account/tokens': ['name', 'days'],
  'POST /account/tokens/revoke': ['id'],
  'POST /digests': ['path', 'frequency'],
  'POST /digests/:id/delete': [],
};
/** Tables a refused request may still write: its session's last-seen touch and the sign-in throttle's attempts. */
const MAY_CHANGE_ON_REFUSAL = ['sessions', 'login_attempts'];

/** A digest of every row of every table (marts excluded: only refreshes write them). */
async function checksum(tables?: string[]): Promise<Record<string, string>> {
  const names = tables ?? (await t.db.query<{ t: string }>(sql`SELECT table_name AS t FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'mart\\_%'
      AND table_name <> ALL(${MAY_CHANGE_ON_REFUSAL}) ORDER BY 1`)).map((r) => r.t);
  const parts = names.map((n) => `(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM "${n}" x) AS "${n}"`);
  return (await t.db.one<Record<string, string>>(`SELECT ${parts.join(', ')}`))!;
}

function roleFor(rule: RouteRule): Role | undefined {
  if (rule.access === 'public') return undefined;
  if (rule.access === 'authenticated') return 'analyst';
  return rule.access[0];
}

test('every POST form, generated field values, signed in with a role it allows: never a 5xx; a 4xx writes nothing', async () => {
  const posts = ROUTES.filter((r) => r.method === 'POST');
  const missing = posts.map((r) => `${r.method} ${r.path}`).filter((k) => !(k in FIELDS));
  assert.equal(missing, [], `POST rows without fields in FIELDS: ${missing.join(', ')}`);
  const refusals: string[] = [];
  for (const rule of posts) {
    const fields = FIELDS[`${rule.method} ${rule.path}`];
    const url = rule.path.replace(':titleId', String(titleId)).replace(':id', String(targetUserId));
    const api = isApi(url);
    const arb = fc.record({
      values: fc.array(fc.tuple(fc.constantFrom(...fields, 'extra_field'), api ? fc.oneof(text, fc.jsonValue({ maxDepth: 2 })) : text), { maxLength: 8 }),
      raw: fc.constantFrom('', '&', '&%', '&%zz=1', '&=x', '&a=%FF'),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ values, raw }) => {
      const role = roleFor(rule);
      const headers: Record<string, string> = { Accept: 'text/html,application/json', Origin: TEST_ORIGIN };
      // a fresh session per request: sign-out rows end theirs
      if (role) headers.Cookie = await sessionCookie(t.db, (await t.db.one<{ id: number }>(sql`SELECT id FROM users WHERE role = ${role} AND status = 'active' ORDER BY id LIMIT 1`))!.id);
      let body: string;
      if (api) {
        headers['Content-Type'] = 'application/json';
        body = raw === '' ? JSON.stringify(Object.fromEntries(values)) : `{"broken": ${raw}`;
      } else {
        headers['Content-Type'] = 'application/x-www-form-urlencoded';
        body = new URLSearchParams(values.map(([k, v]) => [k, String(v)])).toString() + raw;
      }
      const before = await checksum();
      const res = await app.request(url, { method: 'POST', headers, body });
      const answer = await res.text();
      assertNo5xx(res, `POST ${url} as ${role ?? 'anonymous'} with ${body.slice(0, 200)}`, answer);
      if (res.status >= 400) {
        const after = await checksum();
        const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
        if (changed.length) throw new Error(`POST ${url} answered ${res.status} but changed ${changed.join(', ')}: ${body.slice(0, 200)}`);
        refusals.push(`${rule.path} ${res.status}`);
      }
    }), runs(5));
  }
  assert.ok(refusals.length > 10, `generated input was refused with a 4xx at least sometimes (${refusals.length})`);
});

// ── (c) the titles CSV loader ─────────────────────────────────────────────────────────────────────────────────────
const CATALOG = ['titles', 'genres', 'countries', 'people', 'title_genres', 'title_countries', 'title_cast', 'title_directors'];

const csvField = fc.oneof(text, fc.constantFrom('"', '""', '"unterminated', 'a"b', '"a""b"', ',', '\n', '\r', '"\n"', 's1', 's2',
  'Movie', 'TV Show', '90 min', '2 Seasons', 'September 25, 2021', '2021', 'Dramas, Comedies', 'United States, India'));
const csvFile = fc.record({
  header: fc.oneof(
    fc.constant([...COLUMNS] as string[]),
    fc.shuffledSubarray([...COLUMNS] as string[], { minLength: 1 }),
    fc.array(text, { maxLength: 14 }),
    fc.constant([] as string[]),
  ),
  rows: fc.array(fc.array(csvField, { maxLength: 14 }), { maxLength: 8 }),
  quoteAll: fc.boolean(),
  eol: fc.constantFrom('\n', '\r\n', '\r'),
  bom: fc.boolean(),
  junk: fc.oneof(fc.constant(new Uint8Array()), fc.uint8Array({ maxLength: 40 })),
});

test('the titles CSV loader on generated malformed files: a load or a TitlesInputError, and a refusal writes nothing', async () => {
  let loaded = 0, refused = 0;
  await fc.assert(fc.asyncProperty(csvFile, async (f) => {
    const line = (cells: string[]) => cells.map((c) => (f.quoteAll ? `"${c.replace(/"/g, '""')}"` : c)).join(',');
    const textPart = [line(f.header), ...f.rows.map(line)].join(f.eol);
    const bytes = Buffer.concat([Buffer.from(f.bom ? '\uFEFF' : ''), Buffer.from(textPart), Buffer.from(f.junk)]);
    const before = await checksum(CATALOG);
    const titlesBefore = (await t.db.one<{ n: number }>('SELECT count(*)::int AS n FROM titles'))!.n;
    let summary;
    try {
      summary = await loadTitles(t.db, { name: 'fuzz.csv', stream: Readable.from([bytes]) });
    } catch (e) {
      if (!(e instanceof TitlesInputError)) throw new Error(`not a TitlesInputError: ${(e as Error)?.stack ?? e}\nfile: ${JSON.stringify(bytes.toString('latin1').slice(0, 500))}`);
      assert.ok(e.problem.length > 0, 'the error says what is wrong');
      assert.equal(await checksum(CATALOG), before, `a refused file changed the catalog: ${e.message}`);
      refused++;
      return;
    }
    loaded++;
    const titlesAfter = (await t.db.one<{ n: number }>('SELECT count(*)::int AS n FROM titles'))!.n;
    assert.is(titlesAfter, titlesBefore + summary.inserted - summary.removed, 'titles counted as the summary says');
    assert.is(summary.inserted + summary.updated + summary.unchanged, summary.loaded, 'every loaded row is accounted for');
    if (summary.inserted + summary.updated === 0) assert.equal(await checksum(CATALOG), before, 'a load that changed nothing wrote nothing');
  }), runs(60));
  console.log(`loader: ${loaded} loaded, ${refused} refused`);
  assert.ok(refused > 0, `some generated files were refused (${refused} refused, ${loaded} loaded)`);
});

test.run();
