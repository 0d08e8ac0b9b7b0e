/**
 * A fake worker that the hub dials: `GET /me` and a WebSocket at `/ws`, on a fixed or free port.
 * It says hello on each connection and answers every task with its args.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeMessage, FrameDecoder } from '@utils-hub/protocol';
import { checkFrame } from './contract.js';

export interface DialableWorker {
  url: string;
  port: number;
  /** Authorization headers seen on `/ws` upgrades. */
  authorizations: Array<string | undefined>;
  connections: number;
  stop(): Promise<void>;
}

export async function dialableWorker(description: object, port = 0, opts: { secret?: string; delayMs?: number } = {}): Promise<DialableWorker> {
  const authorizations: Array<string | undefined> = [];
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({ noServer: true });
  const server: Server = createServer((req, res) => {
    if (req.url === '/me') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(description));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  const state = { connections: 0 };
  server.on('upgrade', (req, socket, head) => {
    authorizations.push(req.headers.authorization);
    if (req.url !== '/ws' || (opts.secret && req.headers.authorization !== `Bearer ${opts.secret}`)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      state.connections++;
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('error', () => undefined);
      const decoder = new FrameDecoder({
        onMessage: (m) => {
          checkFrame('hubToWorker', m, 'a dialable worker');
          if (m.type !== 'task') return;
          const answer = () => {
            if (ws.readyState !== ws.OPEN) return;
            const { text, binaries } = encodeMessage({ type: 'result', task_id: m.task_id, result: m.args });
            ws.send(text);
            for (const b of binaries) ws.send(b);
          };
          if (opts.delayMs) setTimeout(answer, opts.delayMs);
          else answer();
        },
        onError: () => undefined,
      });
      ws.on('message', (d, isBinary) => decoder.push(d as Buffer, isBinary));
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, me: description, concurrency: 2, instance: 'dialable' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    authorizations,
    get connections() {
      return state.connections;
    },
    stop: async () => {
      for (const s of sockets) s.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
