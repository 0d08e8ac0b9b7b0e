/**
 * A webhook receiver for the bench's `hub-delivery` peer: answers every POST 204 at once, counts
 * them, and prints `receiver listening on http://127.0.0.1:PORT`, then `received N` on SIGTERM.
 *
 *   node --import tsx bench/webhook-receiver.ts [--delay MS]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let received = 0;
/** `--delay MS`: each answer waits this long (a receiver across a network, or a slow one). */
const at = process.argv.indexOf('--delay');
const delayMs = at > 0 ? Number(process.argv[at + 1]) : 0;
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  req.on('end', () => {
    received++;
    if (delayMs > 0) setTimeout(() => res.writeHead(204).end(), delayMs);
    else res.writeHead(204).end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`receiver listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  process.stdout.write(`received ${received}\n`);
  server.close();
  process.exit(0);
});
