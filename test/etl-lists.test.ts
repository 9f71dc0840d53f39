// The titles ETL splits genre/cast/country/director lists in one place, links.ts (README "Titles ETL"). This checks,
// on generated lists full of the awkward cases (blank and tab/CR/LF edges, no-break spaces, empty items, repeats in
// another case, quotes, accents), that the splitter's items are exactly those of the careful SQL split the loader
// used to run beside it, and that what SQL reads back (the staged text of a clean list, or the splitter's re-joined
// text) gives the same items with a plain string_to_array(…, ', ').
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sql from 'sql-template-tag';
import { useDatabase } from './helpers/db.ts';
import { LINK_KINDS, LinkSpool, ListSplitter } from '../etl/titles/links.ts';

const t = useDatabase(test);

/** One list through ListSplitter as the list worker runs it: the items spooled, and the re-joined text if any. */
function split(dir: string, raw: string, kind: number): { items: string[]; joined: string | null } {
  const file = path.join(dir, 'spool.bin');
  const spool = new LinkSpool(file);
  const buf = Buffer.from(raw, 'utf8');
  let joined: string | null = null;
  spool.begin(1);
  for (let k = 0; k < LINK_KINDS.length; k++) {
    spool.list();
    if (k === 0) joined = new ListSplitter().list(spool, spool.names.people, buf, 0, buf.length, kind);
  }
  spool.commit();
  spool.close();
  const back = new LinkSpool(file, spool.names);
  const items: string[] = [];
  back.forEach((_line, w, at) => { for (let i = 1; i <= w[at]; i++) items.push(spool.names.people.name(w[at + i])); });
  back.close();
  return { items, joined };
}

const piece = fc.constantFrom('a', 'A', 'b', 'Bo', 'é', ' ', ' ', ',', ', ', ',,', '\t', '\r\n', '\n', '\u00a0', '"', 'x y');
/** A list field's value (what staging holds) and whether the CSV field was quoted. */
const awkward = fc.array(piece, { minLength: 1, maxLength: 12 }).map((p) => p.join(''));
/** Mostly clean lists (items joined by ", "), some with a repeat or a quote. */
const tidy = fc.array(fc.constantFrom('Dramas', 'dramas', 'Ana Lúcia', 'O"Neil', 'x'), { minLength: 1, maxLength: 5 }).map((p) => p.join(', '));
const field = fc.record({ value: fc.oneof(awkward, tidy), quoted: fc.boolean() });

test('ListSplitter gives the careful SQL split\'s items, and SQL reads them back with a plain split', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mq-etl-lists-'));
  let rejoined = 0, clean = 0;
  try {
    await fc.assert(fc.asyncProperty(field, async ({ value, quoted }) => {
      // the CSV scan's field kinds: 0 plain, 1 quoted, 2 plain with stray quotes, 3 quoted with "" escapes (raw bytes)
      const hasQuote = value.includes('"');
      const raw = quoted ? value.replace(/"/g, '""') : value;
      const { items, joined } = split(dir, raw, (quoted ? 1 : 0) + (hasQuote ? 2 : 0));
      if (joined !== null) rejoined++; else clean++;
      const r = (await t.db.one<{ careful: string[]; back: string[] }>(sql`
        SELECT ARRAY(SELECT btrim(x, E' \t\r\n') FROM unnest(string_to_array(${value}::text, ',')) WITH ORDINALITY AS u(x, o)
          WHERE btrim(x, E' \t\r\n') <> '' GROUP BY 1 ORDER BY min(o)) AS careful,
          coalesce(string_to_array(${joined ?? value}::text, ', '), '{}') AS back`))!;
      assert.equal(items, r.careful, JSON.stringify(value));
      assert.equal(r.back, r.careful, JSON.stringify(value));
    }), { numRuns: 400, seed: 17 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(rejoined > 100 && clean > 50, `both paths taken (${rejoined} re-joined, ${clean} clean)`);
});

test.run();
