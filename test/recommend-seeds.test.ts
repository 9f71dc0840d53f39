// The recommender beats most-popular by the same margin on other simulated histories (seeds 7 and 11; seed 42 is
// test/recommend.test.ts): the evaluation's time-based split on the simulator's `--scale small` preset.
import { test } from 'uvu';
import { useDatabase } from './helpers/db.ts';
import { loadTitles } from '../etl/titles/load.ts';
import { BUNDLED_TITLES } from './helpers/dataset.ts';
import { parseArgs } from '../etl/simulator/params.ts';
import { runSimulation } from '../etl/simulator/run.ts';
import { evaluateRecommendations } from '../server/ml/recommend.ts';
import { assertMargins } from './helpers/recommend.ts';

const t = useDatabase(test);

test.before(async () => { await loadTitles(t.db, BUNDLED_TITLES); });

for (const [i, seed] of [7, 11].entries()) {
  test(`seed ${seed}: hit-rate@10 and NDCG@10 at least 1.5 × most-popular's`, async () => {
    await runSimulation(t.db, parseArgs(['--scale', 'small', '--seed', String(seed), '--quiet', ...(i ? ['--reset'] : [])]));
    assertMargins(seed, await evaluateRecommendations(t.db, { seed }));
  });
}

test.run();
