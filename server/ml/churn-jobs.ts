// When the churn model runs without anyone asking: the scheduled jobs (server/jobs/registry.ts) and the first start.
import type { Db } from '../db/index.ts';
import type { Job } from '../jobs/index.ts';
import { runMlTask } from './worker.ts';

/** A fresh model every week; scores every day (training first when no model exists yet). Both replace whole rows or
 *  add a model row, so a tick run twice only repeats the work. In a worker thread (worker.ts). */
export function churnJobs(log: (l: string) => void): Job[] {
  return [
    { name: 'churn.train', schedule: '40 4 * * 1', run: (db, now) => runMlTask(db.url, 'train', { now }, log) },
    { name: 'churn.score', schedule: '20 5 * * *', run: (db, now) => runMlTask(db.url, 'score', { now }, log) },
  ];
}

/** First start: when the database has a history and no churn model yet, train, score and evaluate the recommendations
 *  once — in the background (the caller does not wait) and in a worker thread, logging the outcome; a failure is
 *  logged, never thrown. */
export function firstStartModels(db: Db, log: (l: string) => void): Promise<void> {
  return runMlTask(db.url, 'firstStart', {}, log).catch((e) => log(`ml: first-start training stopped: ${e.message}`));
}
