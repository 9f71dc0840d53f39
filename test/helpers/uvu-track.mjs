// `node --import tsx --import ./test/helpers/uvu-track.mjs file.test.ts` (what test/run.ts does): test files get
// the recording uvu wrapper.
import { register } from 'node:module';
register('./uvu-hooks.mjs', import.meta.url);
