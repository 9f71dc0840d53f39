// Module hooks for test files run by test/run.ts: `import … from 'uvu'` resolves to test/helpers/uvu-tracked.ts,
// which records every declared test and its outcome (see there). The wrapper's own import gets the real uvu.
const wrapper = new URL('./uvu-tracked.ts', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'uvu' && !context.parentURL?.startsWith(wrapper)) return next(wrapper, context);
  return next(specifier, context);
}
