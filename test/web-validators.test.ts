// Other people's validators over the product (README "Accessibility and validators"), on a small simulated business:
// - html-validate (config: .htmlvalidate.json, html-validate:recommended) over the server-rendered HTML of every page
//   (test/helpers/pages.ts), as the role that sees it;
// - the official Vega-Lite JSON schema (node_modules/vega-lite/build/vega-lite-schema.json, with ajv) over every
//   report's spec as GET /api/reports/<id> serves it, data inlined.
// axe-core runs in the browser: test/e2e/accessibility.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { HtmlValidate } from 'html-validate';
import { Ajv } from 'ajv';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { sitePages, sitePagesData } from './helpers/pages.ts';
import { loadDashboardData } from './fixtures/dashboard-data.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog } from '../server/reports/engine.ts';

const catalog = loadCatalog();
const getCatalog = () => catalog;
import { ensureBuilt } from '../views/build.ts';
import type { Role } from '../server/auth/access.ts';

const root = path.resolve(import.meta.dirname, '..');
const t = useDatabase(test);
let app: ReturnType<typeof createApp>;
const cookies = new Map<Role, string>();
let someone: number;
let title: { id: number; name: string };

test.before(async () => {
  await ensureBuilt();
  await loadDashboardData(t.db, { users: 300 });
  app = createApp({ db: t.db, log: () => {} });
  for (const role of ['admin', 'subscriber'] as Role[]) {
    const u = await createUser(t.db, { role });
    cookies.set(role, await sessionCookie(t.db, u.id));
    if (role === 'admin') title = await sitePagesData(t.db, u.id);
  }
  someone = (await createUser(t.db, { role: 'analyst' })).id;
});

async function get(p: { path: string; as: Role | null; post?: Record<string, string> }) {
  const cookie = p.as ? cookies.get(p.as)! : '';
  return authedRequest(app, cookie, p.path, p.post ? { method: 'POST', body: p.post } : {});
}

test('html-validate (html-validate:recommended, .htmlvalidate.json) finds nothing on any page', async () => {
  const config = JSON.parse(fs.readFileSync(path.join(root, '.htmlvalidate.json'), 'utf8'));
  delete config.$schema;
  const validator = new HtmlValidate(config);
  const problems: string[] = [];
  const pages = sitePages(getCatalog(), { userId: someone, title });
  for (const p of pages) {
    const res = await get(p);
    assert.is(res.status, p.status ?? 200, `${p.path} as ${p.as}: ${res.status}`);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/, p.path);
    const report = await validator.validateString(await res.text(), `${p.path} (${p.as ?? 'signed out'})`);
    for (const r of report.results) for (const m of r.messages) {
      problems.push(`${r.filePath}:${m.line}:${m.column} ${m.ruleId}: ${m.message}${m.selector ? ` [${m.selector}]` : ''}`);
    }
  }
  assert.ok(pages.length >= 53, `only ${pages.length} pages`);
  const byRule = new Map<string, number>();
  for (const m of problems) { const rule = / ([a-z-]+): /.exec(m)![1]; byRule.set(rule, (byRule.get(rule) ?? 0) + 1); }
  const counts = [...byRule].map(([k, n]) => `${k} × ${n}`).join(', ');
  assert.equal(problems, [], `${problems.length} html-validate errors (${counts}):\n${problems.slice(0, 80).join('\n')}`);
});

test('every report\'s spec, as /api/reports/<id> serves it, is valid against the Vega-Lite schema', async () => {
  const schema = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/vega-lite/build/vega-lite-schema.json'), 'utf8'));
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  const problems: string[] = [];
  const ids = [...getCatalog().reports.keys()].sort();
  assert.ok(ids.length >= 39, `only ${ids.length} reports`);
  // reports whose default window may hold nothing on the simulated business: a window that has rows
  const query: Record<string, string> = { subscriptions_expired_incomplete: '?from=1990-01-01' };
  for (const id of ids) {
    const res = await authedRequest(app, cookies.get('admin')!, `/api/reports/${id}${query[id] ?? ''}`);
    assert.is(res.status, 200, id);
    const { spec, rowCount } = await res.json() as { spec: any; rowCount: number };
    assert.ok(Array.isArray(spec.data?.values) || spec.datasets, `${id}: no inline data`);
    assert.ok(rowCount > 0, `${id}: no rows on the simulated business (the schema check would miss data-dependent parts)`);
    if (!validate(spec)) {
      problems.push(`${id}: ${ajv.errorsText(validate.errors!.slice(0, 5), { separator: '; ' })}`);
    }
  }
  assert.equal(problems, [], problems.join('\n'));
});

test('the theme buttons announce the chosen theme: aria-pressed "true" on it, "false" on the others', async () => {
  for (const theme of ['auto', 'dark', 'light']) {
    const res = await app.request('/login', { headers: { Cookie: `mq_theme=${theme}` } });
    const page = await res.text();
    const pressed = [...page.matchAll(/<button[^>]*name="theme" value="(\w+)" aria-pressed="([^"]*)"/g)].map((m) => `${m[1]}=${m[2]}`);
    assert.equal(pressed, ['auto', 'dark', 'light'].map((x) => `${x}=${x === theme}`), theme);
  }
});

test.run();
