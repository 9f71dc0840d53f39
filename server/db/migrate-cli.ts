// npm run migrate — apply pending migrations to DATABASE_URL or the embedded database.
import { configOrExit } from '../config.ts';
import { openDatabase } from './connect.ts';
import { createDb, redactUrl } from './index.ts';
import { migrate } from './migrate.ts';

const target = await openDatabase(configOrExit(process.env, 'migrate'), undefined, { shareRunning: true });
const db = createDb(target.url, { max: 2 });
let code = 0;
try {
  const r = await migrate(db, { log: (l) => console.log(l) });
  console.log(r.applied.length ? `migrated ${redactUrl(target.url)} to version ${r.current}` : `already at version ${r.current}`);
} catch (e: any) {
  console.error(`migrate: ${e.message}`);
  code = 1;
} finally {
  await db.close();
  await target.stop();
}
process.exit(code);
