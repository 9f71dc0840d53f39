// npm run snapshot -- "<dashboard or report path>" --out FILE [--role R]: the same self-contained HTML file as the
// pages' "Snapshot" link (server/sharing/snapshot.ts), written to FILE (or stdout with --out -). Uses DATABASE_URL,
// else the embedded PostgreSQL under MARQUEE_DATA_DIR (the running server's when it is up). Renders as an admin
// unless --role says otherwise (a role sees what it sees on the page). Exit status 2 for bad arguments or a path that
// does not render (the message names why), 1 for anything else.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { configOrExit } from '../config.ts';
import { createDb } from '../db/index.ts';
import { openDatabase } from '../db/connect.ts';
import { migrate } from '../db/migrate.ts';
import { loadCatalog, DEFAULT_REPORTS_DIR } from '../reports/catalog.ts';
import { loadDashboards } from '../dashboards/catalog.ts';
import { HttpError } from '../errors.ts';
import { STAFF, type Role } from '../auth/access.ts';
import { renderSnapshot } from './snapshot.ts';

const USAGE = `usage: npm run snapshot -- "<path>" --out FILE [--role ${STAFF.join('|')}]
  path: a dashboard or report page's path with its query, e.g. "/dashboards/executive_overview?from=2026-01"
  --out FILE   where to write the HTML file ("-": standard output)
  --role R     render as this role sees it (default admin)`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { out: { type: 'string' }, role: { type: 'string' }, help: { type: 'boolean' } } });
  } catch (e: any) {
    console.error(`snapshot: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.values.help) { console.log(USAGE); return 0; }
  const [target, ...extra] = args.positionals;
  const role = (args.values.role ?? 'admin') as Role;
  const problem = !target ? 'give the dashboard or report path' : extra.length ? `one path only (got also ${extra.join(' ')})`
    : !args.values.out ? '--out FILE is required' : !STAFF.includes(role) ? `--role must be one of ${STAFF.join(', ')}` : '';
  if (problem) { console.error(`snapshot: ${problem}\n\n${USAGE}`); return 2; }

  const config = configOrExit(process.env, 'snapshot');
  const catalog = loadCatalog(config.reportsDir ?? DEFAULT_REPORTS_DIR);
  const dashboards = loadDashboards(config.dashboardsDir, catalog);
  const dbTarget = await openDatabase(config, () => {}, { shareRunning: true });
  const db = createDb(dbTarget.url, { max: 2, applicationName: 'marquee-snapshot-cli' });
  try {
    await migrate(db);
    const snap = await renderSnapshot({ catalog, dashboards, readDb: db, caches: { reports: null }, now: () => new Date() }, role, target!);
    if (args.values.out === '-') process.stdout.write(snap.html);
    else {
      const out = path.resolve(args.values.out!);
      fs.writeFileSync(out, snap.html);
      console.error(`snapshot: ${snap.path} → ${out} (${(Buffer.byteLength(snap.html) / 1024).toFixed(0)} KiB, data as of ${snap.asOf})`);
    }
    return 0;
  } catch (e) {
    if (e instanceof HttpError) { console.error(`snapshot: ${e.status}: ${e.message}`); return 2; }
    throw e;
  } finally {
    await db.close();
    await dbTarget.stop();
  }
}

main().then((code) => process.exit(code), (e) => { console.error(`snapshot: ${e.stack ?? e.message}`); process.exit(1); });
