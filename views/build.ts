// The browser bundle: esbuild turns the page entry points in views/ (and public/app.css) into public/build/ with
// content-hashed names, a manifest.json that server/assets.ts resolves names through, and precompressed .br/.gz
// siblings that the static route serves by Accept-Encoding. `npm run build` runs it; `ensureBuilt()` lets
// `npm start`, `npm test` and benchmarks rebuild only when the sources are newer than the manifest.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VIEWS = path.join(ROOT, 'views');
const PUBLIC = path.join(ROOT, 'public');
const OUT = path.join(PUBLIC, 'build');
const MANIFEST = path.join(OUT, 'manifest.json');

/** Page entry points: views/<name>.ts -> manifest key "<name>.js". */
export const ENTRIES = ['dashboard-page', 'report-page', 'player'];
/** Hashed files no manifest refers to are kept this long, so a server still running the previous manifest works. */
const KEEP_STALE_MS = 60 * 60 * 1000;

export interface BuildResult { manifest: Record<string, string>; files: { name: string; bytes: number; br: number; gz: number }[]; ms: number }

export async function build(opts: { minify?: boolean; log?: (l: string) => void } = {}): Promise<BuildResult> {
  const t0 = performance.now();
  fs.mkdirSync(OUT, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [
      ...ENTRIES.map((e) => ({ in: path.join(VIEWS, `${e}.ts`), out: e })),
      { in: path.join(PUBLIC, 'app.css'), out: 'app' },
    ],
    outdir: OUT,
    bundle: true,
    splitting: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    minify: opts.minify ?? true,
    legalComments: 'none',
    entryNames: '[name]-[hash]',
    chunkNames: 'chunks/[name]-[hash]',
    assetNames: 'assets/[name]-[hash]',
    metafile: true,
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });

  const manifest: Record<string, string> = {};
  const files: BuildResult['files'] = [];
  for (const out of result.outputFiles) {
    const rel = path.relative(OUT, out.path).split(path.sep).join('/');
    const meta = result.metafile.outputs[path.relative(ROOT, out.path).split(path.sep).join('/')];
    if (meta?.entryPoint) {
      const key = path.basename(meta.entryPoint).replace(/\.ts$/, '.js');
      manifest[key] = rel;
    }
    const target = path.join(OUT, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    // Hashed names: an existing file already has exactly these bytes (and its compressed siblings).
    let br = 0, gz = 0;
    if (!fs.existsSync(target) || !fs.existsSync(target + '.br') || !fs.existsSync(target + '.gz')) {
      const brBytes = zlib.brotliCompressSync(out.contents, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: out.contents.length },
      });
      const gzBytes = zlib.gzipSync(out.contents, { level: 9 });
      writeAtomic(target + '.br', brBytes);
      writeAtomic(target + '.gz', gzBytes);
      writeAtomic(target, out.contents);
      br = brBytes.length; gz = gzBytes.length;
    } else {
      const now = new Date();
      for (const f of [target, target + '.br', target + '.gz']) fs.utimesSync(f, now, now);
      br = fs.statSync(target + '.br').size; gz = fs.statSync(target + '.gz').size;
    }
    files.push({ name: rel, bytes: out.contents.length, br, gz });
  }
  writeAtomic(MANIFEST, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
  pruneStale(new Set(files.map((f) => f.name)));
  const ms = performance.now() - t0;
  opts.log?.(`build: ${files.length} files in public/build (${(ms / 1000).toFixed(1)} s)`);
  return { manifest, files, ms };
}

function writeAtomic(file: string, bytes: Uint8Array) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

function pruneStale(current: Set<string>) {
  const cutoff = Date.now() - KEEP_STALE_MS;
  for (const rel of listFiles(OUT)) {
    if (rel === 'manifest.json') continue;
    const base = rel.replace(/\.(br|gz)$/, '');
    if (current.has(base)) continue;
    const file = path.join(OUT, rel);
    if (fs.statSync(file).mtimeMs < cutoff || rel.endsWith('.tmp')) fs.rmSync(file, { force: true });
  }
}

function listFiles(dir: string, prefix = ''): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory()
    ? listFiles(path.join(dir, d.name), `${prefix}${d.name}/`) : [`${prefix}${d.name}`]);
}

/** Newest modification time of the bundle's sources (views/**.ts, public/app.css). */
function newestSource(): number {
  let newest = fs.statSync(path.join(PUBLIC, 'app.css')).mtimeMs;
  for (const rel of listFiles(VIEWS)) {
    if (/\.(ts|css)$/.test(rel)) newest = Math.max(newest, fs.statSync(path.join(VIEWS, rel)).mtimeMs);
  }
  return newest;
}

/** Builds when the manifest is missing, older than the sources, or names a file that is gone. Fast when up to date. */
export async function ensureBuilt(log?: (l: string) => void): Promise<boolean> {
  if (fs.existsSync(MANIFEST)) {
    const fresh = fs.statSync(MANIFEST).mtimeMs >= newestSource();
    const manifest = JSON.parse(fs.readFileSync(MANIFEST, 'utf8')) as Record<string, string>;
    const complete = ENTRIES.every((e) => manifest[`${e}.js`]) && Object.values(manifest).every((f) => fs.existsSync(path.join(OUT, f)));
    if (fresh && complete) return false;
  }
  await build({ log });
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const r = await build({ minify: !process.argv.includes('--no-minify') });
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  for (const f of r.files.sort((a, b) => a.name.localeCompare(b.name))) {
    console.log(`${f.name.padEnd(48)} ${kb(f.bytes).padStart(10)}  br ${kb(f.br).padStart(9)}  gz ${kb(f.gz).padStart(9)}`);
  }
  console.log(`built ${Object.keys(r.manifest).length} entries in ${(r.ms / 1000).toFixed(1)} s -> public/build/manifest.json`);
}
