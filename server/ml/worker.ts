// The model work (training, scoring, recommendations, their evaluation) runs in a worker thread with its own small
// pool: its arithmetic takes seconds to minutes of CPU, and on the serving process's event loop it stalled every request,
// let transactions in flight hit idle_in_transaction_session_timeout and job leases lapse (README "Recommendations and
// churn prediction"). The thread's entry point is ml-thread.ts; a task is a name and its arguments, its answer a
// structured clone; log lines come back as they are written.
import { Worker } from 'node:worker_threads';
import type { MlTasks } from './ml-thread.ts';

export type MlTaskName = keyof MlTasks;

/** Runs `task` of ml-thread.ts in a new worker thread against the database at `url`; resolves with its result. */
export function runMlTask<K extends MlTaskName>(url: string, task: K, args: Parameters<MlTasks[K]>[1],
  log: (l: string) => void = () => {}): Promise<Awaited<ReturnType<MlTasks[K]>>> {
  const entry = new URL(`./ml-thread.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url).href;
  // Under tsx (npm start, tests) a worker does not inherit its loader: register it in the thread before the entry.
  const code = import.meta.url.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`
    : `import(${JSON.stringify(entry)})`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { url, task, args } });
    let settled = false;
    worker.on('message', (m: { log?: string; result?: unknown; error?: string }) => {
      if (m.log !== undefined) log(m.log);
      else if (m.error !== undefined) { settled = true; reject(new Error(m.error)); }
      else { settled = true; resolve(m.result as Awaited<ReturnType<MlTasks[K]>>); }
    });
    worker.on('error', (e) => { if (!settled) { settled = true; reject(e); } });
    worker.on('exit', (code) => { if (!settled) { settled = true; reject(new Error(`ML worker thread exited with code ${code}`)); } });
  });
}
