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

/** Sends a text frame and its binary frames in order. Returns false when nothing was sent. */
export function sendFrames(ws: WebSocket, text: string, binaries: readonly Uint8Array[] | null | undefined, maxBuffered: number): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  if (ws.bufferedAmount > maxBuffered) {
    ws.close(SLOW_READER_CLOSE, 'slow reader: too many unsent bytes');
    return false;
  }
  cork(ws);
  ws.send(text);
  if (binaries) for (const b of binaries) ws.send(b, { binary: true });
  return true;
}
