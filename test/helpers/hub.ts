/**
 * Starts a hub in process on port 0 (buildApp + listen) and gives its URLs; raw fake workers
 * and clients over real sockets.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildOptions } from '../../server/src/app.js';
import { WsPeer, type Msg } from './ws-peer.js';
import { eventually, sleep, until } from './wait.js';

export interface TestHub {
  app: FastifyInstance;
  url: string;
  wsUrl: string;
  close(): Promise<void>;
}

/** A fresh SQLite file for one hub. */
export function tempSqlite(): string {
  return `sqlite:${join(mkdtempSync(join(tmpdir(), 'uh-test-')), 'hub.sqlite')}`;
}

export async function startHub(options: BuildOptions = {}): Promise<TestHub> {
  const app = await buildApp({ db: tempSqlite(), logLevel: 'silent', port: 0, ...options });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  let closing: Promise<void> | null = null;
  return {
    app,
    url: address,
    wsUrl: address.replace(/^http/, 'ws'),
    close: () => (closing ??= app.close().then(() => undefined)),
  };
}

/** A service description for tests, unique by name. */
export function me(name: string, input: Msg[] = [{ argument_name: 'x', argument_description: 'a number', type: 'int' }]): Msg {
  return { name, description: `test service ${name}`, input };
}

/** A raw worker that said hello and got its welcome. */
export async function fakeWorker(
  hub: TestHub,
  description: Msg,
  opts: { concurrency?: number; instance?: string; token?: string } = {},
): Promise<WsPeer & { welcome: Msg }> {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const peer = await WsPeer.open(`${hub.wsUrl}/worker`, headers);
  peer.send({ type: 'hello', protocol: 1, me: description, concurrency: opts.concurrency ?? 1, instance: opts.instance ?? 'test' });
  const welcome = await peer.next((m) => m.type === 'welcome' || m.type === 'error');
  if (welcome.type !== 'welcome') throw new Error(`worker refused: ${JSON.stringify(welcome)}`);
  return Object.assign(peer, { welcome });
}

/** A raw client that got its first `services` push. */
export async function fakeClient(hub: TestHub, headers: Record<string, string> = {}): Promise<WsPeer> {
  const peer = await WsPeer.open(`${hub.wsUrl}/client`, headers);
  await peer.nextOf('services');
  return peer;
}

/** fetch + JSON, returning status and body. */
export async function http(
  hub: TestHub,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed };
}

export { eventually, sleep, until };

/** Resolves once the hub holds no live worker connection for `serviceId` (a closed worker's close has been handled). */
export const workerGone = (hub: TestHub, serviceId: number, ms = 5000) =>
  until(() => hub.app.hub.workerConnections(serviceId).length === 0, `service ${serviceId}'s worker to be gone`, ms);
