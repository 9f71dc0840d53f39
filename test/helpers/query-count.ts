// A Db that counts what goes to PostgreSQL: statements (every query, inside a transaction or not), transactions (tx()
// calls) and commits (transactions plus statements that write outside one). For cost tests and the checkout bench's
// profile: how many round trips and commits a request takes, counted, not timed.
import type { Db, Queryable } from '../../server/db/index.ts';

export interface QueryCounts { statements: number; transactions: number; commits: number; texts: string[] }

const WRITES = /^\s*(INSERT|UPDATE|DELETE|WITH[\s\S]*\b(INSERT|UPDATE|DELETE)\b)/i;
const text = (q: unknown) => (typeof q === 'string' ? q : (q as { text: string }).text).replace(/\s+/g, ' ').trim();

export function countingDb(db: Db): { db: Db; counts: QueryCounts; reset(): void } {
  const counts: QueryCounts = { statements: 0, transactions: 0, commits: 0, texts: [] };
  const note = (q: unknown, inTx: boolean) => {
    counts.statements++;
    const t = text(q);
    counts.texts.push(inTx ? `  ${t}` : t);
    if (!inTx && WRITES.test(t)) counts.commits++;
  };
  const counted = (q: Queryable, inTx: boolean): Queryable => Object.assign(Object.create(q) as Queryable, {
    query: (s: any, v?: unknown[]) => { note(s, inTx); return q.query(s, v); },
    one: (s: any, v?: unknown[]) => { note(s, inTx); return q.one(s, v); },
    withColumns: (s: any, v?: unknown[]) => { note(s, inTx); return q.withColumns(s, v); },
  });
  const wrapped = Object.assign(Object.create(db) as Db, counted(db, false), {
    tx: <T>(fn: (q: Queryable) => Promise<T>, opts?: Parameters<Db['tx']>[1]) => {
      counts.transactions++;
      counts.commits++;
      counts.texts.push('BEGIN');
      return db.tx((q) => fn(counted(q, true)), opts);
    },
    withClient: <T>(fn: (q: Queryable) => Promise<T>) => db.withClient((q) => fn(counted(q, false))),
  });
  return {
    db: wrapped, counts,
    reset() { counts.statements = 0; counts.transactions = 0; counts.commits = 0; counts.texts = []; },
  };
}
