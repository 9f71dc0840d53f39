// Command-line arguments for the entry points (npm run simulate, npm run traffic): parsed, or the error and the usage
// printed and exit status 2 (called wrong, as configOrExit does for the environment); --help prints the usage, exit 0.
export function argsOrExit<T extends { help: boolean }>(program: string, usage: string, parse: () => T,
  isUsageError: (e: unknown) => e is Error): T {
  let args: T;
  try {
    args = parse();
  } catch (e) {
    if (!isUsageError(e)) throw e;
    console.error(`${program}: ${e.message}\n\n${usage}`);
    process.exit(2);
  }
  if (args.help) { console.log(usage); process.exit(0); }
  return args;
}
