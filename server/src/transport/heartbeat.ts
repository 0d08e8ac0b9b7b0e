/**
 * One timer pings every connection each `HUB_HEARTBEAT_MS` and terminates those that did not
 * answer the previous ping (docs/protocol.md section 5): no timer per connection.
 */
import type { WebSocket } from 'ws';

interface Beat {
  alive: boolean;
}

export class Heartbeat {
  private readonly sockets = new Map<WebSocket, Beat>();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs: number) {
    this.timer = setInterval(() => this.beat(), intervalMs);
    this.timer.unref();
  }

  /** Watches `ws` until it closes; a silent socket is terminated (its close event follows). */
  watch(ws: WebSocket): void {
    const beat: Beat = { alive: true };
    this.sockets.set(ws, beat);
    ws.on('pong', () => {
      beat.alive = true;
    });
    ws.once('close', () => this.sockets.delete(ws));
  }

  get size(): number {
    return this.sockets.size;
  }

  private beat(): void {
    for (const [ws, beat] of this.sockets) {
      // The hub stopped reading from it (its task store is behind): its pong may be waiting unread.
      // It gets a full interval to answer once reading resumes.
      if (ws.isPaused) {
        beat.alive = true;
        continue;
      }
      if (!beat.alive) {
        this.sockets.delete(ws);
        ws.terminate();
        continue;
      }
      beat.alive = false;
      try {
        ws.ping();
      } catch {
        // A socket that cannot take a ping is closing; its close event cleans up.
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.sockets.clear();
  }
}
