// The one place where first-start demo data plugs in, in order. Each step says whether its data is present
// (so a second start skips it) and how to load it.
import type { Db } from './db/index.ts';
import { titlesDemoStep } from '../etl/titles/demo-step.ts';
import { simulationDemoStep } from '../etl/simulator/demo-step.ts';

export interface DemoStep {
  name: string;
  present(db: Db): Promise<boolean>;
  load(db: Db, log: (line: string) => void): Promise<void>;
}

export const demoDataSteps: DemoStep[] = [
  titlesDemoStep, // first: the simulator's viewing history needs the catalog
  simulationDemoStep, // 50,000 simulated customers over 12 months (etl/simulator)
];
