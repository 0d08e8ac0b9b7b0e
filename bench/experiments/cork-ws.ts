/**
 * Experiment, loaded into the hub with `node --import tsx --import ./bench/experiments/cork-ws.ts`:
 * makes every `ws` WebSocket hold its socket's writes until the end of the tick (as
 * bench/wire.ts does for the bench processes), without touching the hub's code, to measure what
 * that change would be worth there (`npm run bench -- --experiment-cork`).
 */
import { WebSocket } from 'ws';

type Corkable = { cork(): void; uncork(): void };
const corked = new Set<Corkable>();
const send = WebSocket.prototype.send;

WebSocket.prototype.send = function patchedSend(this: WebSocket, ...args: Parameters<WebSocket['send']>) {
  const socket = (this as unknown as { _socket?: Corkable })._socket;
  if (socket && !corked.has(socket)) {
    corked.add(socket);
    socket.cork();
    process.nextTick(() => {
      corked.delete(socket);
      socket.uncork();
    });
  }
  return send.apply(this, args);
} as WebSocket['send'];
