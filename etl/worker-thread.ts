// Starting a module of this project on a worker thread. A worker does not inherit tsx's module hooks, so under tsx
// (npm start, npm test, the CLIs) it registers them itself before loading the module; a bundled build loads it as is.
import { Worker } from 'node:worker_threads';

/** A worker running `moduleUrl` (its top level checks workerData for its own key and runs). */
export function startWorker(moduleUrl: string, workerData: unknown): Worker {
  const boot = moduleUrl.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(moduleUrl)}); })`
    : `import(${JSON.stringify(moduleUrl)})`;
  return new Worker(boot, { eval: true, workerData });
}
