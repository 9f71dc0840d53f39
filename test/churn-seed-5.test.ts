// The churn model beats the recency heuristic by a margin on simulator seed 5 (test/helpers/churn-sim.ts; the other
// seeds: test/churn-seed-*.test.ts).
import { test } from 'uvu';
import { useDatabase } from './helpers/db.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { simulateForChurn, assertModelBeatsHeuristic, CHURN_MARGIN } from './helpers/churn-sim.ts';

const t = useDatabase(test);

test(`simulator seed 5: the model beats the recency heuristic by ${CHURN_MARGIN} AUC on the held-out cutoff`, async () => {
  await loadTitles(t.db, BUNDLED_TITLES);
  await simulateForChurn(t.db, 5);
  await assertModelBeatsHeuristic(t.db, 5);
});

test.run();
