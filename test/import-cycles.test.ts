// The layers read top-down: no import cycle in server/, etl/ or views/, counting type-only imports too (a type cycle
// is still two modules that cannot be read one before the other). See "Layout" in the README.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

/** Relative imports of every .ts file below `dirs` (static, `export … from`, side-effect and dynamic). */
function importGraph(base: string, dirs: string[]): Map<string, string[]> {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else if (p.endsWith('.ts')) files.push(p);
    }
  };
  for (const d of dirs) if (fs.existsSync(path.join(base, d))) walk(path.join(base, d));
  const spec = /^\s*(?:import|export)\s[^'";]*?\sfrom\s+['"](\.[^'"]+)['"]|^\s*import\s+['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/gm;
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps = new Set<string>();
    for (const m of fs.readFileSync(f, 'utf8').matchAll(spec)) {
      const target = path.resolve(path.dirname(f), m[1] ?? m[2] ?? m[3]);
      if (fs.existsSync(target)) deps.add(path.relative(base, target));
    }
    graph.set(path.relative(base, f), [...deps]);
  }
  return graph;
}

/** Each cycle as a path a → b → … → a (one per strongly connected component of more than one module, or a self-import). */
function cycles(graph: Map<string, string[]>): string[] {
  let next = 0;
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const found: string[] = [];
  const visit = (v: string) => {
    index.set(v, next); low.set(v, next++); stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
    if (scc.length > 1 || graph.get(v)?.includes(v)) {
      // walk one loop inside the component, for a readable message
      const inside = new Set(scc), loop = [v];
      for (let at = v; ;) {
        at = graph.get(at)!.find((x) => inside.has(x) && (x === v || !loop.includes(x))) ?? v;
        loop.push(at);
        if (at === v) break;
      }
      found.push(loop.join(' → '));
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('the check finds a cycle, type-only and multi-line imports included', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'marquee-cycles-'));
  try {
    fs.mkdirSync(path.join(dir, 'server'));
    fs.writeFileSync(path.join(dir, 'server/a.ts'), `import {\n  b,\n} from './b.ts';\nexport const a = b;\n`);
    fs.writeFileSync(path.join(dir, 'server/b.ts'), `import type { C } from './c.ts';\nexport const b = 1 as C;\n`);
    fs.writeFileSync(path.join(dir, 'server/c.ts'), `export type C = number;\nexport * from './a.ts';\n`);
    fs.writeFileSync(path.join(dir, 'server/d.ts'), `import './a.ts';\n`);
    const found = cycles(importGraph(dir, ['server']));
    assert.equal(found.length, 1, found.join('\n'));
    assert.equal(found[0].split(' → ').sort(), ['server/a.ts', 'server/a.ts', 'server/b.ts', 'server/c.ts'].sort());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no import cycle in server/, etl/, views/', () => {
  const graph = importGraph(root, ['server', 'etl', 'views']);
  assert.ok(graph.size > 100, `read ${graph.size} modules`);
  assert.ok(graph.get('server/app.ts')!.includes('server/reports/routes.ts'), 'imports are read');
  assert.equal(cycles(graph), []);
});

test.run();
