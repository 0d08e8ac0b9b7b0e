/**
 * Runs the Python worker SDK's pytest suite (python/tests, against real hub processes) with
 * Debian's /usr/bin/python3, so that CI's counts include it. Skips, saying why, when that Python
 * lacks `websockets` or `pytest` (.ci/run installs python3-websockets and python3-pytest).
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = '/usr/bin/python3';

/** Why the suite cannot run here, or null. */
function missing(): string | null {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
  const probe = spawnSync(PYTHON, ['-c', 'import websockets, pytest'], { encoding: 'utf8' });
  return probe.status === 0
    ? null
    : `${PYTHON} lacks websockets or pytest (apt-get install python3-websockets python3-pytest): ${probe.stderr.trim().split('\n').pop()}`;
}

describe('Python worker SDK (pytest against a real hub)', function () {
  this.timeout(600_000);

  it('passes python/tests', async function () {
    const why = missing();
    if (why) {
      console.log(`    skipped: ${why}`);
      this.skip();
    }
    const child = spawn(PYTHON, ['-m', 'pytest', 'python/tests', '-q', '-p', 'no:cacheprovider'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (out += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, out.slice(-4000)).to.equal(0);
    expect(out).to.match(/\d+ passed/);
    expect(out).not.to.match(/\d+ (failed|error)/);
  });
});
