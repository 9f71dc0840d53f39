// loadTitles(): the one entry point the CLI, the first-start demo step, the tests and the benchmark share.
// Bytes -> DecodeStream -> TitlesCsvStream -> binary COPY into a TEMP staging table, then set-based SQL splits the
// genre, country, cast and director lists (the only place they are split: splitLists()) and upserts titles, genres,
// countries, people and the link tables — all inside ONE transaction. Any error rolls everything back, so the
// database is exactly as before; --dry-run does the whole load and rolls back on purpose.
import { pipeline } from 'node:stream/promises';
import sql from 'sql-template-tag';
import type { Db, Queryable } from '../../server/db/index.ts';
import { dropForBulkLoad, mayVerifyForeignKeysInBulk, verifyForeignKeys, type ForeignKey } from '../../server/db/bulk.ts';
import { openSource, type SourceInput } from './source.ts';
import { DecodeStream, describeEncoding, type EncodingMode } from './decode.ts';
import { TitlesCsvStream, STAGING_COLUMNS, type DefectKind, type Reject } from './csv.ts';
import type { DateOrder, DateShape } from './dates.ts';
import type { Column } from './header.ts';
import { InputProblem, TitlesInputError } from './errors.ts';

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
  /** Print each SQL step's time on stderr (the CLI sets it from MARQUEE_ETL_TRACE=1; for tuning on big files). */
  trace?: boolean;
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
/** Each list: its kind in titles_items, staging column, link table, name column, name table, ordered (cast, directors). */
const LISTS = [
  { kind: 0, column: 'director', link: 'title_directors', ref: 'person_id', names: 'people', ordered: true },
  { kind: 1, column: 'cast_names', link: 'title_cast', ref: 'person_id', names: 'people', ordered: true },
  { kind: 2, column: 'country', link: 'title_countries', ref: 'country_id', names: 'countries', ordered: false },
  { kind: 3, column: 'listed_in', link: 'title_genres', ref: 'genre_id', names: 'genres', ordered: false },
] as const;
/** Link rows written at or above which foreign keys are validated set-based (see normalize()). */
export const BULK_LINK_ROWS = 20_000;

const LOCK_KEY = 7_201_100_003; // "marquee titles load": two loads at once would race on the same show_ids

const STAGING_DDL = `CREATE TEMP TABLE titles_staging (
  line integer NOT NULL, rejected boolean NOT NULL, show_id text, type text, title text, director text, cast_names text,
  country text, date_added date, date_mdy date, date_dmy date, release_year smallint, rating text, duration_minutes integer,
  seasons integer, listed_in text, description text
) ON COMMIT DROP`;

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
  const csv = new TitlesCsvStream({ file: source.name, dateOrder: opts.dateOrder, maxRejects: opts.maxRejects ?? 1000 });
  const progress = (phase: LoadProgress['phase']) => opts.onProgress?.({
    phase, bytes: source.consumed(), totalBytes: source.total, rows: csv.stats.rows, elapsedMs: performance.now() - t0,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await db.tx(async (q0) => {
      const q = opts.trace ? traced(q0) : q0;
      await q.query(sql`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
      await q.query(STAGING_DDL);
      if (opts.onProgress) timer = setInterval(() => progress('reading'), opts.progressIntervalMs ?? 200);
      try {
        await q.copyIn(`COPY titles_staging (${STAGING_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`,
          (stream) => pipeline(source.stream, decoder, csv, stream));
      } finally {
        clearInterval(timer);
      }
      const tCopy = performance.now();
      progress('normalizing');
      const { emptyItems, ...summary } = await normalize(q, csv, opts);
      const tEnd = performance.now();
      const s = csv.stats;
      const defects = { ...s.defects };
      if (emptyItems) defects.list_empty_items = emptyItems;
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
  }
}

/** A Queryable that prints each statement's time on stderr (MARQUEE_ETL_TRACE=1: for tuning on big files). */
function traced(q0: Queryable): Queryable {
  const trace = (t: number, text: string) =>
    console.error(`[etl] ${(performance.now() - t).toFixed(0).padStart(6)} ms  ${text.replace(/\s+/g, ' ').slice(0, 90)}`);
  return {
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
}

/**
 * The one list splitter: every staged row's four lists (rejected rows too, for the defect count; their title_id is
 * null, as is a repeated show_id's) as items, with the title id the row's title has or gets — split on
 * commas, trimmed, a repeated item kept once at its first place; `ord` numbers a list's items from 0. Empty items
 * sort last and leave one row of kind -1 per list (counted as a defect, then ignored); a blank list has no items.
 * Each list is cleaned as one array (a per-list subquery the planner can memoize for lists that repeat), not by
 * grouping every item of the file: that sorted millions of rows.
 */
const SPLIT_LISTS = `CREATE TEMP TABLE titles_items ON COMMIT DROP AS
  SELECT st.line, s.title_id, CASE WHEN u.name = '' THEN -1 ELSE k.kind END AS kind, u.name, (u.o - 1)::int AS ord
  FROM titles_staging st LEFT JOIN titles_src s ON s.line = st.line
    CROSS JOIN LATERAL (VALUES ${LISTS.map((l) => `(${l.kind}, st.${l.column})`).join(', ')}) AS k(kind, list)
    CROSS JOIN LATERAL unnest(ARRAY(SELECT btrim(x, E' \\t\\r\\n') FROM unnest(string_to_array(k.list, ',')) WITH ORDINALITY AS r(x, o)
      GROUP BY 1 ORDER BY btrim(x, E' \\t\\r\\n') = '', min(o))) WITH ORDINALITY AS u(name, o)
  WHERE ${trim('k.list')} <> ''`;

type Counts = Pick<LoadSummary, 'loaded' | 'inserted' | 'updated' | 'unchanged' | 'removed' | 'keptReferenced' | 'keptRejected'>;

async function normalize(q: Queryable, csv: TitlesCsvStream, opts: LoadOptions): Promise<Counts & { emptyItems: number }> {
  const s = csv.stats;
  // Names are de-duplicated and joined by hash; with the 4 MB default a big load sorts millions of names on disk.
  await q.query(`SET LOCAL work_mem = '128MB'`);
  if (s.lateRejectLines.length) {
    await q.query(sql`UPDATE titles_staging SET rejected = true WHERE line = ANY(${s.lateRejectLines}::int[])`);
  }
  // a show_id twice in one file: the first row wins, the others are rejected with their lines
  const dups = await q.query<{ line: number; show_id: string; first: number; record: string }>(`
    WITH d AS (SELECT ${trim('show_id')} AS show_id FROM titles_staging WHERE NOT rejected GROUP BY 1 HAVING count(*) > 1),
    r AS (SELECT st.line, d.show_id, min(st.line) OVER (PARTITION BY d.show_id) AS first,
            concat_ws(',', ${STAGING_COLUMNS.slice(2).map((c) => `'"' || replace(coalesce(st.${c}::text, ''), '"', '""') || '"'`).join(', ')}) AS record
          FROM titles_staging st JOIN d ON d.show_id = ${trim('st.show_id')} WHERE NOT st.rejected)
    SELECT * FROM r WHERE line <> first ORDER BY line`);
  for (const d of dups) {
    s.rejects.push({ line: d.line, showId: d.show_id, reason: `show_id ${JSON.stringify(d.show_id)} already appears at line ${d.first}`, record: d.record });
  }
  if (s.rejects.length > (opts.maxRejects ?? 1000)) {
    throw new InputProblem(`more than ${opts.maxRejects ?? 1000} rows rejected (${dups.length} repeated show_ids)`);
  }
  const dmy = s.dateOrder?.order === 'dmy';
  const keep = dups.length ? `DISTINCT ON (${trim('show_id')})` : '';
  const order = dups.length ? `ORDER BY ${trim('show_id')}, line` : '';
  // What each staged title becomes: inserted (a new id from the titles sequence here, so the link rows below need no
  // join back to titles), updated, or — its own columns the same — 'same' until its lists are compared below.
  // titles_src holds only the id and status; the cleaned columns are read from staging again by the INSERT and UPDATE
  // below (a join on line), not written out to a second 300 MB table.
  await q.query(`CREATE TEMP TABLE titles_src ON COMMIT DROP AS
    WITH s AS (
      SELECT ${keep} line, ${trim('show_id')} AS show_id, ${cleanColumns('st', dmy).map(([n, e]) => `${e} AS ${n}`).join(', ')}
      FROM titles_staging st WHERE NOT rejected ${order}
    )
    SELECT s.line, s.show_id, coalesce(t.id, nextval(pg_get_serial_sequence('titles', 'id'))) AS title_id,
      CASE WHEN t.id IS NULL THEN 'inserted'
        WHEN ROW(t.type, t.title, t.release_year, t.rating, t.duration_minutes, t.seasons, t.date_added, t.description)
          IS NOT DISTINCT FROM ROW(s.type, s.title, s.release_year, s.rating, s.duration_minutes, s.seasons, s.date_added, s.description)
        THEN 'same' ELSE 'updated' END AS status
    FROM s LEFT JOIN titles t ON t.show_id = s.show_id`);
  await q.query(SPLIT_LISTS);
  const emptyItems = (await q.one<{ n: number }>(`SELECT count(*)::int AS n FROM titles_items WHERE kind = -1`))!.n;
  if (await q.one(`SELECT 1 FROM titles_src WHERE status = 'same' LIMIT 1`)) {
    // Their lists, in the file and in the database, aggregated in one pass per list, never per row, so a re-load of a
    // big catalog stays linear. The CTEs carry no statistics, and a nested loop between two of them is quadratic (an
    // 88k-title re-load ran for 25 minutes): hash joins only here.
    await q.query('SET LOCAL enable_nestloop = off');
    const agg = (l: (typeof LISTS)[number]) => `
      db${l.kind} AS (SELECT x.title_id AS id, array_agg(n.name ORDER BY ${l.ordered ? 'x.ord' : 'n.name'}) AS a FROM ${l.link} x
        JOIN ${l.names} n ON n.id = x.${l.ref} WHERE x.title_id IN (SELECT title_id FROM same) GROUP BY 1),
      file${l.kind} AS (SELECT line AS id, array_agg(name ORDER BY ${l.ordered ? 'ord' : 'name'}) AS a FROM titles_items
        WHERE kind = ${l.kind} AND line IN (SELECT line FROM same) GROUP BY 1)`;
    await q.query(`WITH same AS (SELECT line, title_id FROM titles_src WHERE status = 'same'), ${LISTS.map(agg).join(',')}
      UPDATE titles_src s SET status = CASE WHEN TRUE ${LISTS.map((l) => `AND coalesce(file${l.kind}.a, '{}') = coalesce(db${l.kind}.a, '{}')`).join(' ')}
          THEN 'unchanged' ELSE 'updated' END
      FROM same ${LISTS.map((l) => `LEFT JOIN db${l.kind} ON db${l.kind}.id = same.title_id LEFT JOIN file${l.kind} ON file${l.kind}.id = same.line`).join(' ')}
      WHERE s.line = same.line`);
    await q.query('SET LOCAL enable_nestloop = on');
    await q.query(`DELETE FROM titles_items WHERE title_id IN (SELECT title_id FROM titles_src WHERE status = 'unchanged')`);
  }
  await q.query('ANALYZE titles_src'); // the INSERT and UPDATE below join it to staging: with its real row counts
  const counts = (await q.one<{ loaded: number; inserted: number; updated: number; unchanged: number; lo: number; hi: number; links: number }>(`
    SELECT count(*) AS loaded, count(*) FILTER (WHERE status = 'inserted') AS inserted,
      count(*) FILTER (WHERE status = 'updated') AS updated, count(*) FILTER (WHERE status = 'unchanged') AS unchanged,
      coalesce(min(title_id) FILTER (WHERE status = 'inserted'), 0)::float8 AS lo, coalesce(max(title_id) FILTER (WHERE status = 'inserted'), -1)::float8 AS hi,
      (SELECT count(*) FROM titles_items WHERE kind >= 0 AND title_id IS NOT NULL)::float8 AS links
    FROM titles_src`))!;
  // the ids this load gives new titles and names: consecutive, so the foreign-key check can trust them as ranges
  const newIds: Record<string, [number, number]> = { titles: [counts.lo, counts.hi] };
  // Row-by-row foreign-key checks and index maintenance cost more than everything else in a big load (~6 µs per
  // check; 10 million link rows in the 100x benchmark). When a load writes many link rows (and a good share of the
  // tables), the link tables' primary keys and indexes are dropped and re-created inside this transaction, and their
  // foreign keys verified in bulk — where allowed, kept with their triggers skipped and checked by range
  // (verifyForeignKeys), else dropped and re-validated (server/db/bulk.ts, the recipe the simulator uses too) — so
  // integrity is checked exactly as strictly. titles' own unique show_id is rebuilt the same way (its PRIMARY KEY stays:
  // other tables reference it). Small loads (a few changed titles) keep the per-row path and take no exclusive locks.
  const tables = LINK_TABLES.map((t) => `'${t}'::regclass`).join(', ');
  const existing = (await q.one<{ n: number }>(`SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint AS n FROM pg_class WHERE oid IN (${tables})`))!.n;
  const bulk = counts.links >= (opts.bulkLinkRows ?? BULK_LINK_ROWS) && counts.links * 4 >= existing;
  const skipTriggers = bulk && await mayVerifyForeignKeysInBulk(q, LINK_TABLES, LINK_KEYS);
  const rebuild = bulk ? await dropForBulkLoad(q, [...LINK_TABLES, 'titles'], { foreignKeys: !skipTriggers }) : null;
  if (counts.inserted + counts.updated > 0) {
    // the names the written titles use that are new, inserted sorted
    for (const table of ['genres', 'countries', 'people'] as const) {
      const kinds = LISTS.filter((l) => l.names === table).map((l) => l.kind).join(', ');
      const added = (await q.one<{ lo: number | null; hi: number | null }>(`WITH a AS (
          INSERT INTO ${table} (name) SELECT DISTINCT name FROM titles_items l
          WHERE kind IN (${kinds}) AND title_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${table} x WHERE x.name = l.name) ORDER BY 1 RETURNING id)
        SELECT min(id)::float8 AS lo, max(id)::float8 AS hi FROM a`))!;
      if (added.lo !== null && added.hi !== null) newIds[table] = [added.lo, added.hi];
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
    if (skipTriggers) await q.query(`SET LOCAL session_replication_role = replica`);
    for (const l of LISTS) {
      await q.query(`INSERT INTO ${l.link} (title_id, ${l.ref}${l.ordered ? ', ord' : ''})
        SELECT l.title_id, n.id${l.ordered ? ', l.ord' : ''} FROM titles_items l JOIN ${l.names} n ON n.name = l.name
        WHERE l.kind = ${l.kind} AND l.title_id IS NOT NULL`);
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
  return { loaded: counts.loaded, inserted: counts.inserted, updated: counts.updated, unchanged: counts.unchanged,
    removed, keptReferenced, keptRejected, emptyItems };
}
