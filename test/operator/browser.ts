/**
 * The operator page in a real browser: Debian's chromium driven by playwright-core. The page is
 * built once per run (esbuild, well under a second), so the tests see the current sources.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from '../helpers/processes.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Where the screenshots go (git-ignored). */
export const OUTPUT = `${ROOT}test-output/operator/`;

export const LAPTOP = { width: 1366, height: 860 };
export const PHONE = { width: 390, height: 844 };

let built = false;

/** Bundles the page into server/public/ (once per run). */
export function buildPage(): void {
  if (built) return;
  execFileSync(process.execPath, [`${ROOT}server/scripts/build-web.mjs`], { cwd: ROOT, stdio: 'pipe' });
  built = true;
}

/** Builds the page and starts a headless chromium. */
export async function launch(): Promise<Browser> {
  buildPage();
  mkdirSync(OUTPUT, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
