// A Db that counts what goes to PostgreSQL: statements (every query, inside a transaction or not), transactions (tx()
// calls) and commits (transactions plus statements that write outside one). For cost tests and the checkout bench's
// profile: how many round trips and commits a request takes, counted, not timed. `calls` keeps each statement as sent
// (text, values, whether inside a transaction, its first row): the checkout bench replays them with pgbench.
import type { Db, Queryable, Row } from '../../server/db/index.ts';

export interface CountedCall { text: string; values: unknown[]; inTx: boolean; row?: Row }
export interface QueryCounts { statements: number; transactions: number; commits: number; texts: string[]; calls: (CountedCall | 'BEGIN' | 'COMMIT')[] }

const WRITES = /^\s*(INSERT|UPDATE|DELETE|WITH[\s\S]*\b(INSERT|UPDATE|DELETE)\b)/i;
const text = (q: unknown) => (typeof q === 'string' ? q : (q as { text: string }).text).replace(/\s+/g, ' ').trim();
const valuesOf = (q: unknown, v?: unknown[]) => v ?? (typeof q === 'string' ? [] : (q as { values?: unknown[] }).values ?? []);

export function countingDb(db: Db): { db: Db; counts: QueryCounts; reset(): void } {
  const counts: QueryCounts = { statements: 0, transactions: 0, commits: 0, texts: [], calls: [] };
  const note = (q: unknown, v: unknown[] | undefined, inTx: boolean): CountedCall => {
    counts.statements++;
    const t = text(q);
    counts.texts.push(inTx ? `  ${t}` : t);
    if (!inTx && WRITES.test(t)) counts.commits++;
    const call: CountedCall = { text: t, values: valuesOf(q, v), inTx };
    counts.calls.push(call);
    return call;
  };
  const counted = (q: Queryable, inTx: boolean): Queryable => Object.assign(Object.create(q) as Queryable, {
    query: async (s: any, v?: unknown[]) => { const c = note(s, v, inTx); const rows = await q.query(s, v); c.row = rows[0]; return rows; },
    one: async (s: any, v?: unknown[]) => { const c = note(s, v, inTx); const row = await q.one(s, v); c.row = row; return row; },
    withColumns: (s: any, v?: unknown[]) => { note(s, v, inTx); return q.withColumns(s, v); },
  });
  const wrapped = Object.assign(Object.create(db) as Db, counted(db, false), {
    tx: async <T>(fn: (q: Queryable) => Promise<T>, opts?: Parameters<Db['tx']>[1]) => {
      counts.transactions++;
      counts.commits++;
      counts.texts.push('BEGIN');
      counts.calls.push('BEGIN');
      const out = await db.tx((q) => fn(counted(q, true)), opts);
      counts.calls.push('COMMIT');
      return out;
    },
    withClient: <T>(fn: (q: Queryable) => Promise<T>) => db.withClient((q) => fn(counted(q, false))),
  });
  return {
    db: wrapped, counts,
    reset() { counts.statements = 0; counts.transactions = 0; counts.commits = 0; counts.texts = []; counts.calls = []; },
  };
}
