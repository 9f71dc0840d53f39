// The churn model beats the recency heuristic by a margin on simulator seed 8 (test/helpers/churn-sim.ts; one seed
// a file so the seeds run side by side within the per-file timeout).
import { churnSeedSuite } from './helpers/churn-sim.ts';

churnSeedSuite(8);
