// The churn model on a simulated business, shared by test/churn-simulated.test.ts and test/churn-seed-*.test.ts (one
// simulator seed per file, so the files run side by side within the per-file timeout).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useDatabase } from './db.ts';
import { loadTitles } from '../../etl/titles/load.ts';
import { BUNDLED_TITLES } from './dataset.ts';
import type { Db } from '../../server/db/index.ts';
import { parseArgs } from '../../etl/simulator/params.ts';
import { runSimulation } from '../../etl/simulator/run.ts';
import { trainChurnModel } from '../../server/ml/churn.ts';

export const CHURN_SIM_END = '2026-11-01';
/** AUC points by which the model must beat the recency heuristic on every seed (README states the measured margins) */
export const CHURN_MARGIN = 0.03;

export async function simulateForChurn(db: Db, seed: number) {
  await runSimulation(db, parseArgs(['--users', '8000', '--months', '12', '--seed', String(seed), '--end', CHURN_SIM_END, '--quiet', '--reset']));
}

/** Trains on the simulated history and checks the margin over the heuristic and the calibration. */
export async function assertModelBeatsHeuristic(db: Db, seed: number) {
  const m = await trainChurnModel(db, { seed: 1 });
  console.log(`  simulator seed ${seed}: model AUC ${m.metrics.auc} PR-AUC ${m.metrics.pr_auc}; heuristic AUC ${m.metrics.baseline.auc} PR-AUC ${m.metrics.baseline.pr_auc}; ${m.metrics.test_rows} test rows, ${m.metrics.test_positives} churned; margin ${(m.metrics.auc - m.metrics.baseline.auc).toFixed(4)}`);
  assert.ok(m.metrics.test_positives >= 50, `enough churners at the test cutoff: ${m.metrics.test_positives}`);
  assert.ok(m.metrics.auc >= m.metrics.baseline.auc + CHURN_MARGIN, `AUC ${m.metrics.auc} vs heuristic ${m.metrics.baseline.auc}`);
  assert.ok(m.metrics.pr_auc > m.metrics.baseline.pr_auc, `PR-AUC ${m.metrics.pr_auc} vs heuristic ${m.metrics.baseline.pr_auc}`);
  // calibrated: over the held-out rows, mean predicted ≈ observed churn rate; the riskiest tenth churns far more
  const bins = m.calibration.filter((b) => b.scorer === 'model');
  const n = bins.reduce((s, b) => s + b.n, 0);
  const predicted = bins.reduce((s, b) => s + b.predicted * b.n, 0) / n, observed = bins.reduce((s, b) => s + b.observed * b.n, 0) / n;
  assert.ok(Math.abs(predicted - observed) < 0.4 * observed, `mean predicted ${predicted} vs observed ${observed}`);
  assert.ok(bins[bins.length - 1].observed > 2 * bins[0].observed, 'the riskiest tenth churns more than twice as often as the safest');
  return m;
}

/** The whole test file of one simulator seed: a fresh database, the simulated business, the margin. */
export function churnSeedSuite(seed: number) {
  const t = useDatabase(test);
  test(`simulator seed ${seed}: the model beats the recency heuristic by ${CHURN_MARGIN} AUC on the held-out cutoff`, async () => {
    await loadTitles(t.db, BUNDLED_TITLES);
    await simulateForChurn(t.db, seed);
    await assertModelBeatsHeuristic(t.db, seed);
  });
  test.run();
}
