// loadTitles(): the one entry point the CLI, the first-start demo step, the tests and the benchmark share.
// Bytes -> DecodeStream -> TitlesCsvStream -> binary COPY into a TEMP staging table (the lists meanwhile split and
// their name ids spooled: links-worker.ts), then set-based SQL upserts titles, genres, countries and people, and the
// spooled link rows of the titles written go into the link tables by COPY — all inside ONE transaction. Any error
// rolls everything back, so the database is exactly as before; --dry-run does the whole load and rolls back on
// purpose.
import { pipeline } from 'node:stream/promises';
import sql from 'sql-template-tag';
import { Readable } from 'node:stream';
import type { Db, Queryable } from '../../server/db/index.ts';
import { BinaryCopy } from '../../server/db/copy-binary.ts';
import { dropForBulkLoad, mayVerifyForeignKeysInBulk, verifyForeignKeys, type ForeignKey } from '../../server/db/bulk.ts';
import { openSource, type SourceInput } from './source.ts';
import { DecodeStream, describeEncoding, type EncodingMode } from './decode.ts';
import { TitlesCsvStream, STAGING_COLUMNS, type DefectKind, type Reject } from './csv.ts';
import type { DateOrder, DateShape } from './dates.ts';
import type { Column } from './header.ts';
import { InputProblem, TitlesInputError } from './errors.ts';
import { LINK_KINDS, NAME_TABLE, type LinkKind, type NameTable } from './links.ts';
import { LinkWorker, type LinkResult } from './links-worker.ts';

export interface LoadProgress {
  phase: 'reading' | 'normalizing';
  bytes: number;
  totalBytes?: number;
  rows: number;
  elapsedMs: number;
}

export interface LoadOptions {
  /** Remove titles that are not in the file (titles with viewing history are kept and reported). */
  replace?: boolean;
  /** Do everything, then roll back. */
  dryRun?: boolean;
  encoding?: EncodingMode;
  /** Day/month order of "9/5/2021" dates; detected from the file when absent. */
  dateOrder?: DateOrder;
  /** More rejected rows than this fails the whole file (default 1000). */
  maxRejects?: number;
  onProgress?: (p: LoadProgress) => void;
  progressIntervalMs?: number;
  /** Link rows at or above which the link tables' foreign keys are re-validated in bulk (default BULK_LINK_ROWS). */
  bulkLinkRows?: number;
  /**
   * Inputs of at least this many bytes (their size as progress counts it: compressed for .gz), or of unknown size
   * (stdin), split their lists on a worker thread (default LIST_WORKER_BYTES).
   */
  listWorkerBytes?: number;
  /** Print each SQL step's time on stderr (the CLI sets it from MARQUEE_ETL_TRACE=1; for tuning on big files). */
  trace?: boolean;
  /** Called with the summary inside the transaction, before it commits (a dry run: before it rolls back): what it
   *  throws rolls the load back. The CLI writes the --rejects file here, so a file it cannot write leaves nothing written. */
  beforeCommit?: (summary: LoadSummary) => void | Promise<void>;
  /** statement_timeout for the load's transaction; 0 (default) = none: a 340 MB load is one long COPY. */
  statementTimeoutMs?: number;
}

export interface LoadSummary {
  source: string;
  container: 'plain' | 'gzip' | 'zip';
  bytes: number;
  encoding: string;
  lineEnds: string;
  header: { mode: 'names' | 'position' | 'no header'; notes: string[] };
  dateFormats: Partial<Record<DateShape, number>>;
  dateOrder: { order: DateOrder; reason: string } | null;
  rows: number;
  loaded: number;
  inserted: number;
  updated: number;
  unchanged: number;
  removed: number;
  /** --replace: titles not in the file kept because viewing history references them. */
  keptReferenced: string[];
  /** --replace: titles not removed because their row in the file was rejected. */
  keptRejected: string[];
  defects: Partial<Record<DefectKind, number>>;
  repairedEncodingLines: number[];
  missing: Partial<Record<Column, number>>;
  rejects: Reject[];
  dryRun: boolean;
  replace: boolean;
  timings: { copyMs: number; normalizeMs: number; totalMs: number };
}

class DryRunRollback extends Error { constructor(readonly summary: LoadSummary) { super('dry run'); } }

export const LINK_TABLES = ['title_genres', 'title_countries', 'title_cast', 'title_directors'];
export const LINK_KEYS: ForeignKey[] = [
  ['title_genres', 'title_id', 'titles'], ['title_genres', 'genre_id', 'genres'],
  ['title_countries', 'title_id', 'titles'], ['title_countries', 'country_id', 'countries'],
  ['title_cast', 'title_id', 'titles'], ['title_cast', 'person_id', 'people'],
  ['title_directors', 'title_id', 'titles'], ['title_directors', 'person_id', 'people'],
];
const LINK_COPY: Record<LinkKind, string> = {
  genres: 'COPY title_genres (title_id, genre_id) FROM STDIN',
  countries: 'COPY title_countries (title_id, country_id) FROM STDIN',
  cast: 'COPY title_cast (title_id, person_id, ord) FROM STDIN',
  directors: 'COPY title_directors (title_id, person_id, ord) FROM STDIN',
};
/** Input size from which the lists are split on a worker thread beside the CSV stage (links-worker.ts). */
const LIST_WORKER_BYTES = 16 << 20;
/** Link rows written at or above which foreign keys are validated set-based (see normalize()). */
export const BULK_LINK_ROWS = 20_000;

const LOCK_KEY = 7_201_100_003; // "marquee titles load": two loads at once would race on the same show_ids

const STAGING_DDL = `CREATE TEMP TABLE titles_staging (
  line integer NOT NULL, show_id text, type text NOT NULL, title text, director text, cast_names text, country text,
  date_added date, date_mdy date, date_dmy date, release_year smallint, rating text, duration_minutes integer,
  seasons integer, listed_in text, description text
) ON COMMIT DROP`;

/**
 * A list's items as an array, from its text as node split it: items joined by ", " (the staged text of a clean list,
 * else the text links.ts re-joined: titles_lists) — read back, not split again.
 */
function list(col: string): string {
  return `coalesce(string_to_array(${col}, ', '), '{}')`;
}
/** titles_lists' column of each kind of list: the staging table's name for it. */
const LIST_COLUMN: Record<LinkKind, string> = { directors: 'director', cast: 'cast_names', countries: 'country', genres: 'listed_in' };

/** Trim what the CSV stage counts as stray whitespace (String.prototype.trim's usual suspects, no-break space too). */
function trim(col: string): string {
  return `btrim(${col}, E' \\t\\r\\n\\u00a0')`;
}

function text(col: string): string {
  return `NULLIF(${trim(`replace(${col}, E'\\r\\n', E'\\n')`)}, '')`;
}

/** A staged row's title columns as they are stored: trimmed, empty text as NULL, the date read in the file's order. */
function cleanColumns(t: string, dmy: boolean): [name: string, expr: string][] {
  return [['type', `${t}.type`], ['title', text(`${t}.title`)], ['release_year', `${t}.release_year`],
    ['rating', `NULLIF(${trim(`${t}.rating`)}, '')`], ['duration_minutes', `${t}.duration_minutes`], ['seasons', `${t}.seasons`],
    ['date_added', `coalesce(${t}.date_added, ${t}.${dmy ? 'date_dmy' : 'date_mdy'})`], ['description', text(`${t}.description`)]];
}
const cleanValues = (t: string, dmy: boolean) => cleanColumns(t, dmy).map(([, e]) => e).join(', ');

export async function loadTitles(db: Db, input: SourceInput, opts: LoadOptions = {}): Promise<LoadSummary> {
  const t0 = performance.now();
  const source = await openSource(input);
  const decoder = new DecodeStream(opts.encoding ?? 'auto');
  const lists = new LinkWorker((source.total ?? Infinity) < (opts.listWorkerBytes ?? LIST_WORKER_BYTES));
  const csv = new TitlesCsvStream({ file: source.name, dateOrder: opts.dateOrder, maxRejects: opts.maxRejects ?? 1000, lists });
  const progress = (phase: LoadProgress['phase']) => opts.onProgress?.({
    phase, bytes: source.consumed(), totalBytes: source.total, rows: csv.stats.rows, elapsedMs: performance.now() - t0,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await db.tx(async (q) => {
      await q.query(sql`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
      await q.query(STAGING_DDL);
      if (opts.onProgress) timer = setInterval(() => progress('reading'), opts.progressIntervalMs ?? 200);
      try {
        await q.copyIn(`COPY titles_staging (${STAGING_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`,
          (stream) => pipeline(source.stream, decoder, csv, stream));
      } finally {
        clearInterval(timer);
      }
      if (opts.trace) console.error(`[etl] staging COPY done at ${(performance.now() - t0).toFixed(0)} ms`);
      const links = await lists.finish();
      const tCopy = performance.now();
      progress('normalizing');
      const summary = await normalize(q, csv, links, opts);
      const tEnd = performance.now();
      const s = csv.stats;
      const defects = { ...s.defects };
      if (links.emptyItems) defects.list_empty_items = links.emptyItems;
      if (decoder.stats.bom) defects.bom = 1;
      if (decoder.stats.repairedLines) defects.windows_1252_lines = decoder.stats.repairedLines;
      if (s.lineEnds.crlf) defects.crlf_line_ends = s.lineEnds.crlf;
      const result: LoadSummary = {
        source: source.name,
        container: source.container,
        bytes: decoder.stats.bytesIn,
        encoding: describeEncoding(decoder.stats, opts.encoding !== undefined && opts.encoding !== 'auto'),
        lineEnds: s.lineEnds.crlf && s.lineEnds.lf ? 'mixed LF and CRLF' : s.lineEnds.crlf ? 'CRLF' : 'LF',
        header: { mode: s.header!.mode, notes: s.header!.notes },
        dateFormats: s.dateShapes,
        dateOrder: s.dateOrder,
        rows: s.rows,
        ...summary,
        defects,
        repairedEncodingLines: decoder.stats.repairedLineNumbers,
        missing: s.missing,
        rejects: s.rejects.sort((a, b) => a.line - b.line),
        dryRun: !!opts.dryRun,
        replace: !!opts.replace,
        timings: { copyMs: tCopy - t0, normalizeMs: tEnd - tCopy, totalMs: tEnd - t0 },
      };
      await opts.beforeCommit?.(result);
      if (opts.dryRun) throw new DryRunRollback(result);
      return result;
    }, { statementTimeoutMs: opts.statementTimeoutMs ?? 0 });
  } catch (e) {
    if (e instanceof DryRunRollback) return e.summary;
    if (e instanceof InputProblem) throw new TitlesInputError(source.name, e.problem, e.line);
    throw e;
  } finally {
    clearInterval(timer);
    source.stream.destroy();
    await lists.close();
  }
}

type Counts = Pick<LoadSummary, 'loaded' | 'inserted' | 'updated' | 'unchanged' | 'removed' | 'keptReferenced' | 'keptRejected'>;

/** Reads a COPY … TO STDOUT (text format) of rows of two non-negative integers into pairs, without strings. */
async function eachPair(stream: Readable, fn: (a: number, b: number) => void) {
  let a = 0, b = 0, second = false;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === 9) second = true;
      else if (c === 10) { fn(a, b); a = 0; b = 0; second = false; }
      else if (second) b = b * 10 + (c - 48);
      else a = a * 10 + (c - 48);
    }
  }
}

async function normalize(q0: Queryable, csv: TitlesCsvStream, { spool: links, rewritten }: LinkResult, opts: LoadOptions): Promise<Counts> {
  const s = csv.stats;
  // opts.trace (MARQUEE_ETL_TRACE=1) prints each statement's time (for tuning on big files)
  const trace = (t: number, text: string) =>
    console.error(`[etl] ${(performance.now() - t).toFixed(0).padStart(6)} ms  ${text.replace(/\s+/g, ' ').slice(0, 90)}`);
  const q: Queryable = !opts.trace ? q0 : {
    ...q0,
    async query<T>(text: any, values?: unknown[]): Promise<T[]> {
      const t = performance.now();
      const r = await q0.query(text, values) as T[];
      trace(t, String(text.text ?? text));
      return r;
    },
    async copyIn(copySql, feed) {
      const t = performance.now();
      const r = await q0.copyIn(copySql, feed);
      trace(t, copySql);
      return r;
    },
  };
  // Names are de-duplicated and joined by hash; with the 4 MB default a big load sorts millions of names on disk.
  await q.query(`SET LOCAL work_mem = '128MB'`);
  if (s.lateRejectLines.length) {
    await q.query(sql`DELETE FROM titles_staging WHERE line = ANY(${s.lateRejectLines}::int[])`);
  }
  // a show_id twice in one file: the first row wins, the others are rejected with their lines
  const dups = await q.query<{ line: number; show_id: string; first: number; record: string }>(`
    WITH d AS (SELECT ${trim('show_id')} AS show_id FROM titles_staging GROUP BY 1 HAVING count(*) > 1),
    r AS (SELECT st.line, d.show_id, min(st.line) OVER (PARTITION BY d.show_id) AS first,
            concat_ws(',', ${STAGING_COLUMNS.slice(1).map((c) => `'"' || replace(coalesce(st.${c}::text, ''), '"', '""') || '"'`).join(', ')}) AS record
          FROM titles_staging st JOIN d ON d.show_id = ${trim('st.show_id')})
    SELECT * FROM r WHERE line <> first ORDER BY line`);
  for (const d of dups) {
    s.rejects.push({ line: d.line, showId: d.show_id, reason: `show_id ${JSON.stringify(d.show_id)} already appears at line ${d.first}`, record: d.record });
  }
  if (s.rejects.length > (opts.maxRejects ?? 1000)) {
    throw new InputProblem(`more than ${opts.maxRejects ?? 1000} rows rejected (${dups.length} repeated show_ids)`);
  }
  // the lists that were not clean, as node split them (few rows: most lists are clean); NULL: the staged text is it
  const listColumns = LINK_KINDS.map((k) => LIST_COLUMN[k]);
  await q.query(`CREATE TEMP TABLE titles_lists (line integer PRIMARY KEY, ${listColumns.map((c) => `${c} text`).join(', ')}) ON COMMIT DROP`);
  if (rewritten.length) {
    const enc = new BinaryCopy();
    for (const r of rewritten) {
      enc.row(1 + r.lists.length).int4(r.line);
      for (const t of r.lists) enc.nullableText(t);
    }
    await q.copyIn(`COPY titles_lists (line, ${listColumns.join(', ')}) FROM STDIN (FORMAT binary)`, (stream) => pipeline(Readable.from(enc.finish()), stream));
  }
  const dmy = s.dateOrder?.order === 'dmy';
  const keep = dups.length ? `DISTINCT ON (${trim('show_id')})` : '';
  const order = dups.length ? `ORDER BY ${trim('show_id')}, line` : '';
  // New titles get their ids from the titles sequence here, so the link rows below need no join back to titles.
  const seq = (await q.one<{ seq: string }>(`SELECT quote_literal(pg_get_serial_sequence('titles', 'id')) AS seq`))!.seq;
  // Set-based compare with what is there: the current link lists of the titles in the file are aggregated in one
  // pass each, never per row, so a re-load of a big catalog stays linear. The file's lists are split here only for
  // titles whose own columns are unchanged (new titles never need it). The CTEs carry no statistics, and a nested
  // loop between two of them is quadratic (an 88k-title re-load ran for 25 minutes): hash joins only here.
  await q.query('SET LOCAL enable_nestloop = off');
  // titles_src holds only what each staged title becomes (its id and status); the cleaned columns are read from
  // staging again by the INSERT and UPDATE below (a join on line), not written out to a second 300 MB table.
  await q.query(`CREATE TEMP TABLE titles_src ON COMMIT DROP AS
    WITH s AS (
      SELECT ${keep} line, ${trim('show_id')} AS show_id, ${cleanColumns('st', dmy).map(([n, e]) => `${e} AS ${n}`).join(', ')},
        ${listColumns.map((c) => `coalesce(f.${c}, st.${c}) AS ${c}`).join(', ')}
      FROM titles_staging st LEFT JOIN titles_lists f USING (line) ${order}
    ),
    m AS (
      SELECT s.line, s.show_id, s.listed_in, s.country, s.cast_names, s.director, t.id AS title_id,
        ROW(t.type, t.title, t.release_year, t.rating, t.duration_minutes, t.seasons, t.date_added, t.description)
          IS NOT DISTINCT FROM ROW(s.type, s.title, s.release_year, s.rating, s.duration_minutes, s.seasons, s.date_added, s.description) AS same_row
      FROM s LEFT JOIN titles t ON t.show_id = s.show_id
    ),
    ids AS (SELECT title_id FROM m WHERE same_row),
    g AS (SELECT x.title_id, array_agg(n.name ORDER BY n.name) AS a FROM title_genres x JOIN genres n ON n.id = x.genre_id
          WHERE x.title_id IN (SELECT title_id FROM ids) GROUP BY 1),
    c AS (SELECT x.title_id, array_agg(n.name ORDER BY n.name) AS a FROM title_countries x JOIN countries n ON n.id = x.country_id
          WHERE x.title_id IN (SELECT title_id FROM ids) GROUP BY 1),
    ca AS (SELECT x.title_id, array_agg(n.name ORDER BY x.ord) AS a FROM title_cast x JOIN people n ON n.id = x.person_id
          WHERE x.title_id IN (SELECT title_id FROM ids) GROUP BY 1),
    d AS (SELECT x.title_id, array_agg(n.name ORDER BY x.ord) AS a FROM title_directors x JOIN people n ON n.id = x.person_id
          WHERE x.title_id IN (SELECT title_id FROM ids) GROUP BY 1)
    SELECT m.line, m.show_id,
      CASE WHEN m.title_id IS NULL THEN nextval(${seq}::regclass) ELSE m.title_id END AS title_id,
      CASE WHEN m.title_id IS NULL THEN 'inserted'
        WHEN m.same_row AND ARRAY(SELECT unnest(${list('m.listed_in')}) ORDER BY 1) = coalesce(g.a, '{}')
          AND ARRAY(SELECT unnest(${list('m.country')}) ORDER BY 1) = coalesce(c.a, '{}')
          AND ${list('m.cast_names')} = coalesce(ca.a, '{}')
          AND ${list('m.director')} = coalesce(d.a, '{}') THEN 'unchanged'
        ELSE 'updated' END AS status
    FROM m LEFT JOIN g ON g.title_id = m.title_id LEFT JOIN c ON c.title_id = m.title_id
      LEFT JOIN ca ON ca.title_id = m.title_id LEFT JOIN d ON d.title_id = m.title_id`);
  await q.query('SET LOCAL enable_nestloop = on');
  await q.query('ANALYZE titles_src'); // the INSERT and UPDATE below join it to staging: with its real row counts
  const counts = (await q.one<{ loaded: number; inserted: number; updated: number; unchanged: number; last: number; lo: number; hi: number }>(`
    SELECT count(*) AS loaded, count(*) FILTER (WHERE status = 'inserted') AS inserted,
      count(*) FILTER (WHERE status = 'updated') AS updated, count(*) FILTER (WHERE status = 'unchanged') AS unchanged,
      coalesce(max(line), 0) AS last,
      coalesce(min(title_id) FILTER (WHERE status = 'inserted'), 0)::float8 AS lo, coalesce(max(title_id) FILTER (WHERE status = 'inserted'), -1)::float8 AS hi
    FROM titles_src`))!;
  // the ids this load gives new titles and names: consecutive, so the foreign-key check can trust them as ranges
  const newIds: Record<string, [number, number]> = { titles: [counts.lo, counts.hi] };
  // The titles being written, by line (0: unchanged, rejected or a repeated show_id), streamed into a typed array
  const titleIds = new Float64Array(counts.last + 1);
  if (counts.inserted + counts.updated > 0) {
    await eachPair(q.copyOut(`COPY (SELECT line, title_id FROM titles_src WHERE status <> 'unchanged') TO STDOUT`), (line, id) => {
      titleIds[line] = id;
    });
  }
  // the spooled lists of those titles: how many link rows, and which names they use
  const used = { genres: new Uint8Array(links.names.genres.count + 1), countries: new Uint8Array(links.names.countries.count + 1),
    people: new Uint8Array(links.names.people.count + 1) };
  let linkRows = 0;
  if (counts.inserted + counts.updated > 0) {
    links.forEach((line, w, at) => {
      if (!titleIds[line]) return;
      for (const kind of LINK_KINDS) {
        const n = w[at];
        const u = used[NAME_TABLE[kind]];
        for (let i = 1; i <= n; i++) u[w[at + i]] = 1;
        linkRows += n;
        at += 1 + n;
      }
    });
  }
  // Row-by-row foreign-key checks and index maintenance cost more than everything else in a big load (~6 µs per
  // check; 10 million link rows in the 100x benchmark). When a load writes many link rows (and a good share of the
  // tables), the link tables' primary keys and indexes are dropped and re-created inside this transaction, and their
  // foreign keys verified in bulk — where allowed, kept with their triggers skipped and checked by range
  // (verifyForeignKeys), else dropped and re-validated (server/db/bulk.ts, the recipe the simulator uses too) — so
  // integrity is checked exactly as strictly. titles' own unique show_id is rebuilt the same way (its PRIMARY KEY stays:
  // other tables reference it). Small loads (a few changed titles) keep the per-row path and take no exclusive locks.
  const tables = LINK_TABLES.map((t) => `'${t}'::regclass`).join(', ');
  const existing = (await q.one<{ n: number }>(`SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint AS n FROM pg_class WHERE oid IN (${tables})`))!.n;
  const bulk = linkRows >= (opts.bulkLinkRows ?? BULK_LINK_ROWS) && linkRows * 4 >= existing;
  const skipTriggers = bulk && await mayVerifyForeignKeysInBulk(q, LINK_TABLES, LINK_KEYS);
  const rebuild = bulk ? await dropForBulkLoad(q, [...LINK_TABLES, 'titles'], { foreignKeys: !skipTriggers }) : null;
  if (counts.inserted + counts.updated > 0) {
    // the names the written titles use: the new ones inserted (sorted, as ids go), then every local id mapped
    // (through a temp table filled by COPY from the names' bytes: no strings, and no parameter of 100k names)
    const nameIds = {} as Record<NameTable, Float64Array>;
    await q.query(`CREATE TEMP TABLE titles_names (lid integer NOT NULL, name text NOT NULL) ON COMMIT DROP`);
    for (const table of ['genres', 'countries', 'people'] as const) {
      await q.query(`TRUNCATE titles_names`);
      await q.copyIn(`COPY titles_names (lid, name) FROM STDIN`, (stream) => pipeline(links.names[table].copyRows(used[table]), stream));
      const added = (await q.one<{ lo: number | null; hi: number | null }>(`WITH a AS (
          INSERT INTO ${table} (name) SELECT name FROM titles_names n
          WHERE NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.name = n.name) ORDER BY 1 RETURNING id)
        SELECT min(id)::float8 AS lo, max(id)::float8 AS hi FROM a`))!;
      if (added.lo !== null && added.hi !== null) newIds[table] = [added.lo, added.hi];
      const map = new Float64Array(links.names[table].count + 1);
      await eachPair(q.copyOut(`COPY (SELECT n.lid, x.id FROM titles_names n JOIN ${table} x ON x.name = n.name) TO STDOUT`), (lid, id) => {
        map[lid] = id;
      });
      nameIds[table] = map;
    }
    await q.query(`INSERT INTO titles (id, show_id, type, title, release_year, rating, duration_minutes, seasons, date_added, description)
      OVERRIDING SYSTEM VALUE
      SELECT s.title_id, s.show_id, ${cleanValues('st', dmy)}
      FROM titles_src s JOIN titles_staging st ON st.line = s.line WHERE s.status = 'inserted'`);
    if (counts.updated) {
      await q.query(`UPDATE titles t SET (type, title, release_year, rating, duration_minutes, seasons, date_added, description, updated_at)
          = (${cleanValues('st', dmy)}, now())
        FROM titles_src s JOIN titles_staging st ON st.line = s.line WHERE s.status = 'updated' AND t.id = s.title_id`);
      for (const link of LINK_TABLES) {
        await q.query(`DELETE FROM ${link} WHERE title_id IN (SELECT title_id FROM titles_src WHERE status = 'updated')`);
      }
    }
    // the link rows, straight from the spool into the link tables
    if (skipTriggers) await q.query(`SET LOCAL session_replication_role = replica`);
    for (const [kind, copy] of Object.entries(LINK_COPY) as [LinkKind, string][]) {
      await q.copyIn(copy, (stream) => pipeline(links.copyRows(kind, titleIds, nameIds[NAME_TABLE[kind]]), stream));
    }
    if (skipTriggers) await q.query(`SET LOCAL session_replication_role = origin`);
  }
  // keys and indexes first, foreign keys last (their validation reads the rebuilt tables)
  await rebuild?.rebuild();
  if (skipTriggers) await verifyForeignKeys(q, LINK_KEYS, newIds);

  let removed = 0;
  let keptReferenced: string[] = [];
  let keptRejected: string[] = [];
  if (opts.replace) {
    const rejectedIds = [...new Set(s.rejects.map((r) => r.showId).filter((x): x is string => !!x))];
    const gone = await q.query<{ id: number; show_id: string; watched: boolean; rejected: boolean }>(sql`
      SELECT t.id, t.show_id,
        EXISTS (SELECT 1 FROM watch_events w WHERE w.title_id = t.id) AS watched,
        t.show_id = ANY(${rejectedIds}::text[]) AS rejected
      FROM titles t WHERE NOT EXISTS (SELECT 1 FROM titles_src s WHERE s.show_id = t.show_id)`);
    keptRejected = gone.filter((g) => g.rejected).map((g) => g.show_id);
    keptReferenced = gone.filter((g) => !g.rejected && g.watched).map((g) => g.show_id);
    const del = gone.filter((g) => !g.rejected && !g.watched).map((g) => g.id);
    if (del.length) {
      removed = (await q.query(sql`DELETE FROM titles WHERE id = ANY(${del}::bigint[]) RETURNING id`)).length;
    }
  }
  return { loaded: counts!.loaded, inserted: counts!.inserted, updated: counts!.updated, unchanged: counts!.unchanged,
    removed, keptReferenced, keptRejected };
}
