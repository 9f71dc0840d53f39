// GET /api/openapi.json: an OpenAPI 3.1 description of the API, generated, never written by hand — every report of the
// catalog (its parameters and their types from the @param declarations, its row shape from PostgreSQL's description of
// its query, the roles that may run it) and every other /api route of the route table (server/auth/access.ts).
// test/openapi.test.ts validates it against the OpenAPI 3.1 schema. README "Sharing: embeds and API tokens".
import { Hono } from 'hono';
import fs from 'node:fs';
import path from 'node:path';
import type { Env } from '../types.ts';
import type { Db } from '../db/index.ts';
import type { Catalog, ReportDef } from '../reports/catalog.ts';
import type { ParamDecl } from '../reports/params.ts';
import { ROUTES, ROLES, type Access } from '../auth/access.ts';

type Schema = Record<string, unknown>;

const VERSION: string = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')).version;

/** The JSON Schema of one declared parameter's value (as sent in the query string). */
function paramSchema(p: ParamDecl): Schema {
  const literal = (v: string | undefined) => v !== undefined && !/^[+-]?\d+[md]$/.test(v) ? v : undefined; // relative defaults are described, not given
  switch (p.type) {
    case 'date': return { type: 'string', format: 'date', ...(literal(p.default) ? { default: p.default } : {}) };
    case 'month': return { type: 'string', pattern: '^\\d{4}-(0[1-9]|1[0-2])$', ...(literal(p.default) ? { default: p.default } : {}) };
    case 'int': return { type: 'integer', ...(p.min !== undefined ? { minimum: Number(p.min) } : {}), ...(p.max !== undefined ? { maximum: Number(p.max) } : {}),
      ...(p.default !== undefined ? { default: Number(p.default) } : {}) };
    case 'boolean': return { type: 'boolean', ...(p.default !== undefined ? { default: p.default === 'true' } : {}) };
    case 'enum': return { type: 'string', enum: p.values ?? [], ...(p.default !== undefined ? { default: p.default } : {}) };
    case 'multi': return { type: 'array', items: { type: 'string', ...(p.values ? { enum: p.values } : {}) } };
  }
}

function parameters(r: ReportDef) {
  return r.params.map((p) => ({
    name: p.name, in: 'query', required: false, schema: paramSchema(p),
    description: `${p.label}${p.default !== undefined ? ` (default ${p.default}${/^[+-]?\d+[md]$/.test(p.default) ? ': relative to today, m = months, d = days' : ''})` : ''}`
      + `${p.lookup ? ` — choices from ${p.lookup}` : ''}`,
    ...(p.type === 'multi' ? { style: 'form', explode: true } : {}),
  }));
}

// PostgreSQL type oids as the API serializes them (server/db: int8 and numeric are numbers, dates stay YYYY-MM-DD).
const BY_OID: Record<number, Schema> = {
  16: { type: 'boolean' }, 20: { type: 'integer' }, 21: { type: 'integer' }, 23: { type: 'integer' },
  700: { type: 'number' }, 701: { type: 'number' }, 1700: { type: 'number' },
  1082: { type: 'string', format: 'date' }, 1114: { type: 'string', format: 'date-time' }, 1184: { type: 'string', format: 'date-time' },
  25: { type: 'string' }, 1043: { type: 'string' }, 19: { type: 'string' }, 18: { type: 'string' },
  1009: { type: 'array', items: { type: 'string' } }, 1007: { type: 'array', items: { type: 'integer' } },
};

/** A report's columns and their types, as PostgreSQL describes its query (run with LIMIT 0: nothing is computed). */
async function describeRows(db: Db, r: ReportDef): Promise<Schema | null> {
  try {
    const { columns } = await db.tx((q) => q.withColumns({ text: `SELECT * FROM (${r.sql}\n) AS q LIMIT 0`, values: r.bindOrder.map(() => null) }),
      { readOnly: true, statementTimeoutMs: 5000 });
    return { type: 'object', properties: Object.fromEntries(columns.map((f) => {
      const base = BY_OID[f.typeId];
      return [f.name, base ? { ...base, type: [base.type, 'null'] } : {}];
    })), required: columns.map((f) => f.name) };
  } catch {
    return null; // a mart not built yet: the shape is described generically until it is
  }
}

const rowShapes = new WeakMap<Db, Map<string, Schema>>();

async function rowSchema(db: Db, r: ReportDef): Promise<Schema> {
  let known = rowShapes.get(db);
  if (!known) rowShapes.set(db, (known = new Map()));
  const key = `${r.id}\0${r.hash}`;
  let s = known.get(key);
  if (!s) {
    const described = await describeRows(db, r);
    if (!described) return { type: 'object', description: 'One row; its columns are listed once the report\'s marts have been built.' };
    known.set(key, (s = described));
  }
  return s;
}

const rolesOf = (a: Access): string[] => a === 'public' ? ['anyone'] : a === 'authenticated' ? [...ROLES] : [...a];

const errorResponse = (what: string) => ({ description: what, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
const COMMON_ERRORS = {
  '401': errorResponse('No valid session or API token'),
  '403': errorResponse('The caller\'s role may not use this'),
  '429': { ...errorResponse('Too many requests with this API token (see Retry-After)'), headers: { 'Retry-After': { schema: { type: 'integer' } } } },
};

/** What the other /api routes do (the route table has who may; this has what). */
const SUMMARIES: Record<string, string> = {
  'GET /api/reports': 'The reports the caller\'s role may run, with their parameters',
  'GET /api/marts': 'Mart status: schedule, generation, as-of, errors, and the refresh history',
  'POST /api/marts/refresh': 'Refresh marts now (body {"marts": [...]} or empty for all)',
  'POST /api/play/:titleId/progress': 'The player\'s progress report for a title (body {"position": seconds})',
  'GET /api/openapi.json': 'This document',
};

export async function openApiDocument(db: Db, catalog: Catalog, origin: string): Promise<Schema> {
  const paths: Record<string, Record<string, unknown>> = {};
  const reports = [...catalog.reports.values()].sort((a, b) => a.id.localeCompare(b.id));
  for (const r of reports) {
    const rows = await rowSchema(db, r);
    const roles = [...r.roles];
    const base = { tags: ['reports'], parameters: parameters(r), 'x-roles': roles };
    const about = `${r.description || r.title}${r.definition ? `\n\nDefinition: ${r.definition}` : ''}\n\nRoles: ${roles.join(', ')}.`;
    paths[`/api/reports/${r.id}`] = { get: { ...base, operationId: `report_${r.id}`, summary: `${r.title}: rows and Vega-Lite spec`, description: about,
      responses: { '200': { description: 'The answer with its freshness and chart', content: { 'application/json': { schema: {
        allOf: [{ $ref: '#/components/schemas/ReportAnswer' }, { type: 'object', properties: { spec: { type: 'object' } } }] } } } },
        '304': { description: 'Not modified (If-None-Match)' }, '400': errorResponse('A parameter is invalid (fields name it)'), ...COMMON_ERRORS } } };
    paths[`/api/reports/${r.id}.json`] = { get: { ...base, operationId: `report_${r.id}_rows`, summary: `${r.title}: rows as JSON`, description: about,
      responses: { '200': { description: 'The rows (at most the report\'s row cap; X-Truncated says whether more exist)',
        content: { 'application/json': { schema: { type: 'array', items: rows } } } }, '400': errorResponse('A parameter is invalid'), ...COMMON_ERRORS } } };
    paths[`/api/reports/${r.id}.csv`] = { get: { ...base, operationId: `report_${r.id}_csv`, summary: `${r.title}: rows as CSV`, description: about,
      responses: { '200': { description: `CSV with a header row: ${Object.keys((rows.properties as Schema | undefined) ?? {}).join(', ') || 'the report\'s columns'}`,
        content: { 'text/csv': { schema: { type: 'string' } } } }, '400': errorResponse('A parameter is invalid'), ...COMMON_ERRORS } } };
  }
  for (const rule of ROUTES) {
    if (!rule.path.startsWith('/api/') || rule.path === '/api/reports/:id') continue;
    const p = rule.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const pathParams = [...rule.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const key = `${rule.method} ${rule.path}`;
    const roles = rolesOf(rule.access);
    (paths[p] ??= {})[rule.method.toLowerCase()] = {
      tags: ['api'], operationId: key.replace(/[^A-Za-z0-9]+/g, '_').replace(/_+$/, '').toLowerCase(),
      summary: SUMMARIES[key] ?? key, description: `Roles: ${roles.join(', ')}.`, 'x-roles': roles,
      ...(pathParams.length ? { parameters: pathParams } : {}),
      ...(rule.method !== 'GET' ? { requestBody: { required: false, content: { 'application/json': { schema: { type: 'object' } } } } } : {}),
      responses: { '200': { description: 'Success', content: { 'application/json': { schema: { type: 'object' } } } }, ...COMMON_ERRORS },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Marquee API', version: VERSION,
      description: 'Reports as JSON and CSV, mart status and refresh. Authenticate with a personal API token from /account '
        + '(`Authorization: Bearer <token>`, acting with its owner\'s role) or a browser session. Each operation lists the roles '
        + 'that may call it in `x-roles`.' },
    servers: [{ url: origin }],
    security: [{ bearerToken: [] }, { session: [] }],
    tags: [{ name: 'reports', description: 'One path per report and format, generated from sql/reports' }, { name: 'api', description: 'Other routes' }],
    paths,
    components: {
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer', description: 'A personal API token (mq_…): /account or `npm run users -- token`' },
        session: { type: 'apiKey', in: 'cookie', name: 'mq_session', description: 'A signed-in browser session' },
      },
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'object', required: ['status', 'message'], properties: {
          status: { type: 'integer' }, message: { type: 'string' }, fields: { type: 'object', additionalProperties: { type: 'string' } },
          requestId: { type: 'string' } } } } },
        ReportAnswer: { type: 'object', required: ['id', 'title', 'params', 'query', 'asOf', 'stale', 'rowCount', 'truncated', 'rowCap'], properties: {
          id: { type: 'string' }, title: { type: 'string' }, params: { type: 'object' }, query: { type: 'string' },
          asOf: { type: 'string', format: 'date-time' }, nextRefresh: { type: ['string', 'null'], format: 'date-time' }, stale: { type: 'boolean' },
          rowCount: { type: 'integer' }, truncated: { type: 'boolean' }, rowCap: { type: 'integer' },
          page: { type: 'integer', description: 'a paged report (@pagesize) only: which page this is; truncated means more rows follow (Link rel=next)' } } },
      },
    },
  };
}

export const openApiRoutes = new Hono<Env>();

openApiRoutes.get('/api/openapi.json', async (c) => {
  const { db, catalog } = c.get('deps');
  c.header('Cache-Control', 'private, no-cache');
  return c.json(await openApiDocument(db, catalog, new URL(c.req.url).origin));
});
