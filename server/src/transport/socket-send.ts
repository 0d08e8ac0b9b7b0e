/**
 * Sending on a WebSocket with a bound on what waits in its buffer: a peer that reads too slowly
 * is closed (1013) rather than letting the hub's memory grow without bound. Writes to one socket
 * within one tick are corked into one system call: a task's `accepted` and `started`, or a burst
 * of results from one worker read, leave together.
 */
import { WebSocket } from 'ws';

/** Close code for a peer that does not read fast enough. */
export const SLOW_READER_CLOSE = 1013;

interface Corkable {
  cork(): void;
  uncork(): void;
}
const corked = new Set<Corkable>();
function uncorkAll(): void {
  for (const s of corked) s.uncork();
  corked.clear();
}

function cork(ws: WebSocket): void {
  const socket = (ws as unknown as { _socket?: Corkable })._socket;
  if (!socket || corked.has(socket)) return;
  if (corked.size === 0) process.nextTick(uncorkAll);
  corked.add(socket);
  socket.cork();
}

/**
 * Sends a text frame and its binary frames in order. Returns false when nothing was sent.
 * `onWritten` is called once, when the socket no longer holds the binary frames' bytes: after
 * the last one is written (or its write failed), or at once when nothing was sent.
 */
export function sendFrames(
  ws: WebSocket,
  text: string,
  binaries: readonly Uint8Array[] | null | undefined,
  maxBuffered: number,
  onWritten?: () => void,
): boolean {
  if (ws.readyState !== WebSocket.OPEN) {
    onWritten?.();
    return false;
  }
  if (ws.bufferedAmount > maxBuffered) {
    ws.close(SLOW_READER_CLOSE, 'slow reader: too many unsent bytes');
    onWritten?.();
    return false;
  }
  cork(ws);
  ws.send(text);
  if (binaries) {
    const last = binaries.length - 1;
    // A socket writes in order: the last frame's callback comes after every earlier one's.
    for (let i = 0; i <= last; i++) ws.send(binaries[i], { binary: true }, i === last ? onWritten : undefined);
  }
  if (!binaries?.length) onWritten?.();
  return true;
}
