/**
 * What the fuzz suite watches besides the answers: the hub's error log (a fault of the hub is
 * logged at error level), process warnings (a timer that overflows), and Object.prototype (the
 * hub runs in this process, so a polluted prototype would show here).
 */
import { WebSocket } from 'ws';
import { checkFrame } from '../../helpers/contract.js';
import { startHub, type TestHub } from '../../helpers/hub.js';
import type { BuildOptions } from '../../../server/src/app.js';

export interface WatchedHub extends TestHub {
  /** Error-level log lines of the hub. */
  errors: string[];
  /** Process warnings emitted while the hub ran. */
  warnings: string[];
  /** Stops watching and says what went wrong, if anything: faults logged, warnings, a polluted prototype. */
  problems(): string[];
}

const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

export async function startWatchedHub(options: BuildOptions = {}): Promise<WatchedHub> {
  const errors: string[] = [];
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const hub = await startHub({
    ...options,
    logger: {
      level: 'error',
      stream: {
        write: (line: string) => {
          errors.push(line.slice(0, 2000));
        },
      },
    },
  });
  return Object.assign(hub, {
    errors,
    warnings,
    problems() {
      process.off('warning', onWarning);
      const out = [...errors.map((e) => `hub logged an error: ${e}`), ...warnings.map((w) => `process warning: ${w}`)];
      const keys = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
      if (keys !== PROTO_KEYS) out.push(`Object.prototype changed: ${keys}`);
      if (({} as Record<string, unknown>).polluted !== undefined) out.push('Object.prototype.polluted is set');
      return out;
    },
  });
}

/** How the echo worker answers a task, chosen by its `s` argument. */
export const BEHAVIOUR = { fail: 'fail', hang: 'hang' } as const;

export interface EchoWorker {
  ws: WebSocket;
  welcome: Record<string, any>;
  /** Tasks received, by id, with their args (attachments not decoded). */
  tasks: Map<string, Record<string, any>>;
  /** Ids of tasks left unanswered (`s` starting with "hang"). */
  hanging: Set<string>;
  close(): Promise<void>;
}

/**
 * A worker that answers each task at once: `result` `{echo: n}`, or `failed` `{code: "boom"}`
 * when `s` is "fail", or nothing when `s` starts with "hang".
 */
export function echoWorker(hub: TestHub, me: object, concurrency = 1024): Promise<EchoWorker> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${hub.wsUrl}/worker`, { perMessageDeflate: false });
    const tasks = new Map<string, Record<string, any>>();
    const hanging = new Set<string>();
    let welcomed = false;
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, me, concurrency, instance: 'fuzz-echo' })));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as Record<string, any>;
      checkFrame('hubToWorker', msg, 'the echo worker');
      if (!welcomed) {
        if (msg.type !== 'welcome') return reject(new Error(`echo worker refused: ${data.toString()}`));
        welcomed = true;
        return resolve({
          ws,
          welcome: msg,
          tasks,
          hanging,
          close: () =>
            new Promise<void>((done) => {
              if (ws.readyState === WebSocket.CLOSED) return done();
              ws.once('close', () => done());
              ws.close();
            }),
        });
      }
      if (msg.type !== 'task') return;
      tasks.set(msg.task_id, msg.args);
      if (tasks.size > 5000) tasks.delete(tasks.keys().next().value as string);
      const s = msg.args?.s;
      if (typeof s === 'string' && s.startsWith(BEHAVIOUR.hang)) {
        hanging.add(msg.task_id);
        return;
      }
      if (s === BEHAVIOUR.fail) ws.send(JSON.stringify({ type: 'failed', task_id: msg.task_id, error: { code: 'boom', message: 'failed on purpose' } }));
      else ws.send(JSON.stringify({ type: 'result', task_id: msg.task_id, result: { echo: msg.args?.n ?? null } }));
    });
  });
}
