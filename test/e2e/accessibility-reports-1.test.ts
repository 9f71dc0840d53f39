// axe-core in Chromium, both themes (test/helpers/a11y.ts), on the report pages /reports/<id>: share 1 of 2 of the
// catalog (the other share and every other page: test/e2e/accessibility*.test.ts).
import { test } from 'uvu';
import { axeSuite, reportShard } from '../helpers/a11y.ts';

axeSuite(test, (p) => reportShard(0, 2)(p), 'report pages, share 1 of 2');

test.run();
