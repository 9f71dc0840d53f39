// Input the loader refuses. The message names the file, the line (when there is one) and the problem, in the
// "file:line: problem" shape editors and terminals link to.
export class TitlesInputError extends Error {
  readonly file: string;
  readonly line?: number;
  readonly problem: string;
  constructor(file: string, problem: string, line?: number) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${problem}`);
    this.name = 'TitlesInputError';
    this.file = file;
    this.line = line;
    this.problem = problem;
  }
}

/** A problem found while reading, before the file name is known to the stage that found it. */
export class InputProblem extends Error {
  constructor(readonly problem: string, readonly line?: number) { super(problem); this.name = 'InputProblem'; }
}
