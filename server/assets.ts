// Static assets: public/ served under /static. Bundles built by esbuild get hashed names recorded in a manifest,
// so pages link the current file and browsers may cache it for a year.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));
let manifest: Record<string, string> | undefined;

export function loadManifest(): Record<string, string> {
  const file = path.join(PUBLIC_DIR, 'build', 'manifest.json');
  manifest = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  return manifest!;
}

/** URL of a public asset; bundled entries resolve through the manifest to their hashed name. */
export function assetUrl(name: string): string {
  const m = manifest ?? loadManifest();
  return m[name] ? `/static/build/${m[name]}` : `/static/${name}`;
}
