/**
 * Builds the operator page into server/public/: the page's plain TypeScript bundled with the
 * client SDK for browsers by esbuild (one minified app.js), its CSS, its HTML and its icon.
 * No framework and no CDN: the page is three small files that work offline.
 * Run after `tsc -b` (the SDK is bundled from its compiled dist/).
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const web = fileURLToPath(new URL('../web/', import.meta.url));
const out = fileURLToPath(new URL('../public/', import.meta.url));

mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: [
    { in: `${web}main.ts`, out: 'app' },
    { in: `${web}style.css`, out: 'app' },
  ],
  outdir: out,
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
  // The SDK imports `ws` only where there is no global WebSocket (old Node): never in a browser.
  external: ['ws'],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
copyFileSync(`${web}index.html`, `${out}index.html`);
copyFileSync(`${web}favicon.svg`, `${out}favicon.svg`);
const sizes = Object.entries(result.metafile.outputs).map(([f, o]) => `${f.split('/').pop()} ${(o.bytes / 1024).toFixed(1)} KB`);
console.log(`page built in ${out}: ${sizes.join(', ')}`);
