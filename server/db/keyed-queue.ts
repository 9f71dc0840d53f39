// One at a time per key within this process, before a transaction that takes a per-key advisory lock: requests that
// would only queue on the lock wait here instead, without holding a pooled connection each (under load a queue of
// sign-ins sharing an account held a good part of the pool and left other requests without a connection). The
// advisory lock still orders the instances among themselves.
export function keyedQueue() {
  const tails = new Map<string, Promise<unknown>>();
  /** `fn` once the calls before it with this key have finished; at once when the key is null. */
  return async function inTurn<T>(key: string | null, fn: () => Promise<T>): Promise<T> {
    if (key === null) return fn();
    const before = tails.get(key) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}
