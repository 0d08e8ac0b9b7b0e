/**
 * The measuring windows of a load process. With `--serve`, the process stays connected and runs
 * one window per stdin line `run WARMUP_MS DURATION_MS`, until `quit` or the end of stdin, so
 * that rounds do not pay for process start and connection set-up; without it, one window of
 * `--warmup` and `--duration` ms, then exit. Each window prints `window start`, `window end`
 * (the harness reads CPU and RSS of the other processes at those lines) and its report as one
 * JSON line.
 */
import { createInterface } from 'node:readline';
import { numFlag } from './wire.js';

/** Runs the windows as the flags say; `run` warms up, measures and prints the two marker lines. */
export async function serveWindows<R>(flags: Map<string, string>, run: (warmupMs: number, durationMs: number) => Promise<R>): Promise<void> {
  const print = (r: R) => process.stdout.write(`${JSON.stringify(r)}\n`);
  if (!flags.has('serve')) {
    print(await run(numFlag(flags, 'warmup', 1000), numFlag(flags, 'duration', 5000)));
    return;
  }
  process.stdout.write('serving\n');
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, warmup, duration] = line.trim().split(/\s+/);
    if (cmd === 'quit') break;
    if (cmd === 'run') print(await run(Number(warmup) || 1000, Number(duration) || 5000));
  }
}

/** Marks the start of the measured part of a window. */
export function windowStart(): void {
  process.stdout.write('window start\n');
}

/** Marks its end. */
export function windowEnd(): void {
  process.stdout.write('window end\n');
}

/** The p-th percentile (0 to 100) of sorted values, NaN for none. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
