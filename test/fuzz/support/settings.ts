/**
 * Seed, case counts and bookkeeping shared by the fuzz suite (test/fuzz).
 *
 * The suite runs in CI with the other tests (`npm test`), with a fixed seed and about five
 * thousand cases in some twenty seconds on two cores. Alone, and as long as you like:
 *
 *   npx mocha --config test/fuzz/mocharc.json                     # the CI run, alone
 *   FUZZ_RUNS=100000 npx mocha --config test/fuzz/mocharc.json    # a long run (tens of minutes)
 *   FUZZ_SEED=7 npx mocha --config test/fuzz/mocharc.json         # other cases
 *
 * (`npx mocha test/fuzz` would also load every test of the root .mocharc.json, whose `spec` it
 * adds to.) `FUZZ_SEED` fixes the generated inputs (default below, so that CI replays the same
 * cases). `FUZZ_RUNS` (default 3000) is shared among the properties by weight; a property whose
 * runs send several messages counts each message as a case. A failure prints its seed and the
 * `path` that replays it: `FUZZ_SEED=<seed> FUZZ_PATH=<path> npx mocha --config
 * test/fuzz/mocharc.json -g '<test title>'`; add `FUZZ_SHRINK=1` to shrink it to a smaller case.
 */
import type fc from 'fast-check';

/** Seed of every property. Env `FUZZ_SEED`. */
export const FUZZ_SEED = intFromEnv('FUZZ_SEED', 20_240_605);
/** Cases of the whole suite, shared by weight. Env `FUZZ_RUNS`. */
export const FUZZ_RUNS = intFromEnv('FUZZ_RUNS', 3000);
/** Replays one failing case (the `path` fast-check printed), with `FUZZ_SEED`. */
const FUZZ_PATH = process.env.FUZZ_PATH || undefined;

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}: expected a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/** Cases of one property: its share (`weight`, of 1000) of FUZZ_RUNS, at least one. */
export function runsOf(weight: number): number {
  return Math.max(1, Math.round((FUZZ_RUNS * weight) / 1000));
}

const tried = new Map<string, number>();
const started = Date.now();

/** Counts one case of a property (called from inside the property). */
export function count(property: string): void {
  tried.set(property, (tried.get(property) ?? 0) + 1);
}

/** fast-check parameters of a property: the fixed seed, its runs, and a per-case deadline. */
export function params<T>(runs: number): fc.Parameters<T> {
  return {
    seed: FUZZ_SEED,
    numRuns: runs,
    path: FUZZ_PATH,
    // A case that does not finish in this time is a hang: the hub owes every peer an answer.
    timeout: 15_000,
    markInterruptAsFailure: true,
    // Shrinking replays cases against a hub whose state moved on; keep it short.
    endOnFailure: process.env.FUZZ_SHRINK !== '1',
  };
}

/** Mocha timeout of a property with `runs` cases. */
export function timeoutFor(runs: number, msPerCase = 40): number {
  return 60_000 + runs * msPerCase;
}

// One line per property and the total, once, after every fuzz file has run.
after(() => {
  if (tried.size === 0) return;
  let total = 0;
  const lines: string[] = [];
  for (const [name, n] of tried) {
    total += n;
    lines.push(`      ${String(n).padStart(6)}  ${name}`);
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`\n    fuzz: ${total} cases in ${secs} s, seed ${FUZZ_SEED} (FUZZ_SEED, FUZZ_RUNS to change)\n${lines.join('\n')}\n`);
});
