// npm run etl -- <file|-> [options]: load the Kaggle "Netflix Movies and TV Shows" CSV into the catalog.
// Only argument parsing, printing and the exit code live here; the work is loadTitles() (etl/titles/load.ts).
import { configOrExit } from '../server/config.ts';
import { parseArgs } from 'node:util';
import { openDatabase, type DatabaseTarget } from '../server/db/connect.ts';
import { createDb, type Db } from '../server/db/index.ts';
import { migrate } from '../server/db/migrate.ts';
import { loadTitles } from './titles/load.ts';
import { parseEncoding, type EncodingMode } from './titles/decode.ts';
import { parseDateOrder, type DateOrder } from './titles/dates.ts';
import { TitlesInputError } from './titles/errors.ts';
import { formatSummary, writeRejects, progressReporter } from './titles/report.ts';

const USAGE = `Usage: npm run etl -- [options] <file | ->

Loads the Kaggle "Netflix Movies and TV Shows" CSV into the catalog (titles, genres, countries, people).
<file> is a .csv, a .csv.gz, Kaggle's .zip download, or - for standard input (plain or gzip).
Re-running upserts by show_id: changed titles are updated, the rest left alone.

Options:
  --replace          make the catalog mirror the file: remove titles that are not in it
                     (titles with viewing history are kept and listed)
  --dry-run          do the whole load, print the summary, then roll back: nothing is written
  --rejects FILE     write the rejected rows (line, show_id, reason, record) to FILE as CSV
  --encoding ENC     auto (default: UTF-8, repairing Windows-1252 lines) | utf-8 | windows-1252 (latin1)
  --date-order ORD   mdy | dmy, for dates like 9/5/2021 (default: detected from the file's dates)
  --max-rejects N    refuse the file when more than N rows are rejected (default 1000)
  --quiet            no progress display
  -h, --help         this text

Environment:
  DATABASE_URL       PostgreSQL to load into; unset: the embedded one under MARQUEE_DATA_DIR (default ./var)

Exit status: 0 loaded (rejected rows, if any, are listed); 1 the input was refused and nothing was written;
2 usage error; 3 the database or something else failed (nothing was written).`;

function usageError(message: string): never {
  console.error(`etl: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      replace: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      rejects: { type: 'string' },
      encoding: { type: 'string' },
      'date-order': { type: 'string' },
      'max-rejects': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
try { args = parse(); } catch (e: any) { usageError(e.message); }
if (args.values.help) { console.log(USAGE); process.exit(0); }
if (args.positionals.length !== 1) usageError(args.positionals.length ? 'give exactly one input file' : 'no input file given (use - for stdin)');
let encoding: EncodingMode | undefined;
let dateOrder: DateOrder | undefined;
let maxRejects = 1000;
try {
  if (args.values.encoding) encoding = parseEncoding(args.values.encoding);
  if (args.values['date-order']) dateOrder = parseDateOrder(args.values['date-order']);
  if (args.values['max-rejects'] !== undefined) {
    maxRejects = Number(args.values['max-rejects']);
    if (!Number.isInteger(maxRejects) || maxRejects < 0) throw new Error(`--max-rejects must be a whole number ≥ 0, got ${args.values['max-rejects']}`);
  }
} catch (e: any) { usageError(e.message); }

const input = args.positionals[0];
let target: DatabaseTarget | undefined;
let db: Db | undefined;
let code = 0;
const progress = args.values.quiet ? undefined : progressReporter(process.stderr);
try {
  const config = configOrExit(process.env, 'etl');
  target = await openDatabase(config, (l) => console.error(l), { shareRunning: true });
  db = createDb(target.url, { max: 2, applicationName: 'marquee-etl' });
  await migrate(db, { log: (l) => console.error(`migrate: ${l}`) });
  const summary = await loadTitles(db, input, {
    replace: args.values.replace, dryRun: args.values['dry-run'], encoding, dateOrder, maxRejects,
    onProgress: progress ? (p) => progress.update(p) : undefined, trace: config.etlTrace,
    // inside the transaction: a rejects file that cannot be written (a full disk) rolls the load back
    beforeCommit: args.values.rejects ? (s) => writeRejects(args.values.rejects!, s.rejects) : undefined,
  });
  progress?.end();
  console.log(formatSummary(summary));
  if (args.values.rejects) {
    console.log(`  rejects:   ${summary.rejects.length} rows written to ${args.values.rejects}`);
  }
} catch (e: any) {
  progress?.end();
  if (e instanceof TitlesInputError) {
    console.error(`etl: ${e.message}\netl: nothing was written.`);
    code = 1;
  } else {
    const full = ['ENOSPC', 'EFBIG', 'EDQUOT'].includes(e.code) ? ' (the disk is full or a file-size limit was reached)' : '';
    console.error(`etl: load failed: ${e.message}${full}\netl: nothing was written (the transaction was rolled back).`);
    code = 3;
  }
} finally {
  await db?.close().catch(() => {});
  await target?.stop().catch(() => {});
}
process.exit(code);
