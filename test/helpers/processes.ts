/**
 * Real processes for end-to-end tests: the `utils-hub` command and the example workers.
 * Every process started here is killed when the test run ends, whatever happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = `${ROOT}server/bin/utils-hub.js`;

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface Proc {
  child: ChildProcess;
  /** Everything printed so far on stdout and stderr. */
  output(): string;
  /** Resolves with the first match of `re` in the output (stdout and stderr). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export function run(command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? -1);
      for (const l of listeners) l();
    }),
  );
  return {
    child,
    output: () => out,
    exited,
    kill: (signal = 'SIGTERM') => child.kill(signal),
    waitFor(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re);
          if (m) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited before printing ${re}: ${out.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${re} in ${timeoutMs} ms: ${out.slice(-2000)}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}

/** Starts `utils-hub start` on a free port; resolves once it prints its listening line. */
export async function startHubProcess(db: string, env: Record<string, string> = {}): Promise<Proc & { url: string }> {
  const p = run(process.execPath, [CLI, 'start', '--port', '0', '--db', db], { HUB_LOG_LEVEL: 'warn', ...env });
  const m = await p.waitFor(/utils-hub listening on (http:\/\/\S+)/);
  return Object.assign(p, { url: m[1] });
}

/** Starts an example worker (`examples/run.ts NAME ...`); resolves once it prints its connected line. */
export async function startExample(name: string, args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const p = run(process.execPath, ['--import', 'tsx', `${ROOT}examples/run.ts`, name, ...args], env);
  await p.waitFor(/connected to|listening on/);
  return p;
}
