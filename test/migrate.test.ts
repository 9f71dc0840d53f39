import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createDatabase } from './helpers/db.ts';
import { migrate, readMigrations, SCHEMA_DIR, MigrationError } from '../server/db/migrate.ts';

const root = path.resolve(import.meta.dirname, '..');

test('migrates an empty database, then a second run is a no-op', async () => {
  const t = await createDatabase({ empty: true });
  try {
    const first = await migrate(t.db);
    assert.equal(first.applied.length, readMigrations().length);
    const tables = await t.db.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`);
    for (const name of ['users', 'sessions', 'audit_log', 'titles', 'plans', 'subscriptions', 'payments', 'visits', 'watch_events'])
      assert.ok(tables.some((r) => r.tablename === name), `table ${name}`);
    const plans = await t.db.query(`SELECT code, price_cents FROM plans ORDER BY sort_order`);
    assert.equal(plans, [{ code: 'standard_with_ads', price_cents: 799 }, { code: 'standard', price_cents: 1799 }, { code: 'premium', price_cents: 2499 }]);
    const second = await migrate(t.db);
    assert.equal(second.applied, []);
    const count = await t.db.one(`SELECT count(*) AS n FROM schema_migrations`);
    assert.is(count!.n, readMigrations().length);
  } finally { await t.drop(); }
});

test('an applied migration that was edited is refused with a message naming the file', async () => {
  const t = await createDatabase({ empty: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-mig-'));
  try {
    for (const f of fs.readdirSync(SCHEMA_DIR)) fs.copyFileSync(path.join(SCHEMA_DIR, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, '9001_extra.sql'), 'CREATE TABLE extra (id int);');
    await migrate(t.db, { dir });
    fs.writeFileSync(path.join(dir, '9001_extra.sql'), 'CREATE TABLE extra (id bigint);');
    try {
      await migrate(t.db, { dir });
      assert.unreachable('edited migration accepted');
    } catch (e: any) {
      assert.instance(e, MigrationError);
      assert.match(e.message, /9001_extra\.sql was edited after it was applied/);
    }
    // a failing new migration is rolled back whole
    fs.writeFileSync(path.join(dir, '9001_extra.sql'), 'CREATE TABLE extra (id int);');
    fs.writeFileSync(path.join(dir, '9002_bad.sql'), 'CREATE TABLE half (id int); SELECT no_such_function();');
    await migrate(t.db, { dir }).then(() => assert.unreachable('bad migration applied'), (e) => assert.match(e.message, /9002_bad\.sql failed/));
    assert.is(await t.db.one(`SELECT to_regclass('half') AS r`).then((r) => r!.r), null);
  } finally { await t.drop(); fs.rmSync(dir, { recursive: true, force: true }); }
});

test('two concurrent migrate processes apply each migration once', async () => {
  const t = await createDatabase({ empty: true });
  try {
    const run = () => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'server/db/migrate-cli.ts'], {
        cwd: root, env: { ...process.env, DATABASE_URL: t.url }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d)); child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
    const [a, b] = await Promise.all([run(), run()]);
    assert.is(a.code, 0, a.out); assert.is(b.code, 0, b.out);
    const applied = [a.out, b.out].join('\n').match(/applied 0001_schema_v1\.sql/g) ?? [];
    assert.is(applied.length, 1, 'exactly one process applied the schema');
    const rows = await t.db.query(`SELECT version FROM schema_migrations`);
    assert.is(rows.length, readMigrations().length);
  } finally { await t.drop(); }
});

test.run();
