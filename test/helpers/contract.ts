/**
 * The contract check of every test peer: each frame a peer receives (the hub's to a client or a
 * worker, an SDK's to the hub) is checked against the schema of its direction and `type` with
 * the compiled validators (protocol/src/validators.ts). A frame that strays fails the test during
 * which it came, naming the peer, the frame and the problem.
 */
import { validate } from '@utils-hub/protocol';

/** Who sends the frames checked. */
export type Direction = 'hubToClient' | 'hubToWorker' | 'clientToHub' | 'workerToHub';

/** The direction of the frames that a peer connected to `url` receives from the hub. */
export function hubDirectionOf(url: string): 'hubToClient' | 'hubToWorker' {
  return new URL(url).pathname.replace(/\/+$/, '').endsWith('/client') ? 'hubToClient' : 'hubToWorker';
}

/** Why `msg` is not a message of `direction`, or undefined when it is one. */
export function contractProblem(direction: Direction, msg: unknown): string | undefined {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return 'not a JSON object';
  const type = (msg as { type?: unknown }).type;
  const table = validate[direction] as Record<string, ((m: unknown) => boolean) & { problem(): string }>;
  const v = typeof type === 'string' && Object.hasOwn(table, type) ? table[type] : undefined;
  if (!v) return `no message of type ${JSON.stringify(type)} goes this way`;
  return v(msg) ? undefined : v.problem();
}

/** The failure of a stray frame: the peer, the direction, the problem and the frame (bytes shown by size). */
export function strayReport(direction: Direction, msg: unknown, who: string, problem: string): string {
  let shown: string;
  try {
    // The holder's own value: a Buffer's toJSON has run before a replacer sees `v`.
    shown = JSON.stringify(msg, function (this: Record<string, unknown>, k: string, v: unknown) {
      const raw = this[k];
      return raw instanceof Uint8Array ? `<${raw.length} bytes>` : v;
    }).slice(0, 400);
  } catch {
    shown = String(msg);
  }
  return `${who} received a ${direction} frame that strays from the contract: ${problem}: ${shown}`;
}

/**
 * Checks one received message (attachments already resolved, or still refs: both fit the
 * schemas). A stray one fails the running test: its error is thrown on a clean stack (not inside
 * the socket's handler), where mocha takes it as the failure of the test under way. Returns
 * whether the message fits.
 */
export function checkFrame(direction: Direction, msg: unknown, who: string): boolean {
  const problem = contractProblem(direction, msg);
  if (problem === undefined) return true;
  const error = new Error(strayReport(direction, msg, who, problem));
  setImmediate(() => {
    throw error;
  });
  return false;
}
