/**
 * Child processes of the harness: started with the open-files limit raised to its hard limit,
 * their stdout read line by line, and every one of them stopped when the harness ends, however
 * it ends (normal exit, error, Ctrl-C). Also the /proc readings: CPU time, RSS, open files.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** A started child process. */
export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** Every stdout line so far. */
  lines: string[];
  /** The last few KB of stderr, for error messages. */
  stderrTail: string;
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  exited: Promise<number | string>;
  exitCode: number | string | null;
  /** Calls `fn` for each later stdout line. */
  onLine(fn: (line: string) => void): () => void;
}

const children = new Set<Child>();

/** Clock ticks per second of /proc/PID/stat times. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Starts `cmd args` with `bash -c 'ulimit -n <hard>; exec ...'`, so the pid is the command's own
 * and it may open as many sockets as the machine allows (10,000 idle connections need it).
 */
export function start(name: string, cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: boolean } = {}): Child {
  const proc = spawn('bash', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bash', cmd, ...args], {
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  });
  const listeners = new Set<(line: string) => void>();
  const child: Child = {
    name,
    proc,
    pid: proc.pid ?? -1,
    lines: [],
    stderrTail: '',
    exitCode: null,
    exited: new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        child.exitCode = code ?? signal ?? -1;
        children.delete(child);
        resolve(child.exitCode);
      });
    }),
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
  proc.on('error', (err) => {
    child.stderrTail += `\nspawn failed: ${err.message}`;
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    child.lines.push(line);
    for (const fn of listeners) fn(line);
  });
  proc.stderr!.on('data', (d: Buffer) => {
    child.stderrTail = (child.stderrTail + d.toString('utf8')).slice(-4000);
  });
  children.add(child);
  return child;
}

/** Waits for a stdout line matching `re`, also among the lines already read from index `since` on. */
export function waitLine(child: Child, re: RegExp, timeoutMs: number, since = 0): Promise<RegExpMatchArray> {
  for (const line of child.lines.slice(since)) {
    const m = line.match(re);
    if (m) return Promise.resolve(m);
  }
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, m?: RegExpMatchArray) => {
      clearTimeout(timer);
      off();
      if (err) reject(err);
      else resolve(m!);
    };
    const off = child.onLine((line) => {
      const m = line.match(re);
      if (m) done(null, m);
    });
    const timer = setTimeout(
      () => done(new Error(`${child.name} printed no ${re} within ${timeoutMs} ms; stderr: ${child.stderrTail.slice(-800)}`)),
      timeoutMs,
    );
    void child.exited.then((code) => {
      // Let the last lines be read first.
      setImmediate(() => done(new Error(`${child.name} exited (${code}) before printing ${re}; stderr: ${child.stderrTail.slice(-800)}`)));
    });
  });
}

/** Sends `signal`, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Stops every child still running, in parallel. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, 'SIGTERM', 3000)));
}

function killAllNow(): void {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

let hooked = false;
let signalled = false;

/** True once the harness got SIGINT, SIGTERM or SIGHUP: errors from then on are its echo. */
export function interrupted(): boolean {
  return signalled;
}
/** Makes sure no child outlives the harness: on exit, on Ctrl-C or SIGTERM, on an uncaught error. */
export function cleanupOnExit(onSignal: () => Promise<void> = async () => {}): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      signalled = true;
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      void Promise.race([Promise.all([stopAll(), onSignal()]), new Promise((r) => setTimeout(r, 8000))]).finally(() => process.exit(130));
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    killAllNow();
    process.exit(1);
  });
}

/**
 * CPU time (user + system) of a process so far, in seconds; with `thread`, of that thread alone
 * (the process's id is its main thread: a Node.js program's event loop). NaN when it cannot be read.
 */
export function cpuSeconds(pid: number, thread?: number): number {
  try {
    const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size of a process, in bytes (VmRSS of /proc/PID/status); NaN when unreadable. */
export function rssBytes(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Read and write system calls of a process so far (/proc/PID/io: syscr, syscw); NaN when unreadable. */
export function syscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const get = (k: string) => Number(io.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN);
    return { reads: get('syscr'), writes: get('syscw') };
  } catch {
    return { reads: NaN, writes: NaN };
  }
}

/** How many files (sockets included) a process has open; NaN when unreadable. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** The pid of a running program by name (for redis-server), or null. */
export function pidOf(program: string): number | null {
  try {
    const out = execFileSync('pidof', ['-s', program], { encoding: 'utf8' }).trim();
    return out ? Number(out) : null;
  } catch {
    return null;
  }
}

/** The soft and hard limits of open files of this process. */
export function openFilesLimit(): { soft: number; hard: number } {
  try {
    const m = readFileSync('/proc/self/limits', 'utf8').match(/^Max open files\s+(\S+)\s+(\S+)/m);
    const n = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
    return m ? { soft: n(m[1]), hard: n(m[2]) } : { soft: NaN, hard: NaN };
  } catch {
    return { soft: NaN, hard: NaN };
  }
}
