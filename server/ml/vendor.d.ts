// Types for the part of ml-logistic-regression we use (the package ships none): its two-class model, trained by
// batch gradient ascent on the log-likelihood from zero weights (deterministic), the bias being a column of ones.
declare module 'ml-logistic-regression/src/logreg_2classes.js' {
  import type { Matrix } from 'ml-matrix';
  export default class LogisticRegressionTwoClasses {
    constructor(options?: { numSteps?: number; learningRate?: number; weights?: Matrix | number[][] });
    weights: Matrix | null;
    train(features: Matrix, target: Matrix): void;
    testScores(features: Matrix): number[];
  }
}
