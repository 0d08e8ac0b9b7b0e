import { expect } from 'chai';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeMessage, FrameDecoder } from '@utils-hub/protocol';
import { checkFrame } from '../helpers/contract.js';
import { sleep, until } from '../helpers/wait.js';
import { HubClient, HubError, media, type HubClientOptions, type TaskProgress } from '@utils-hub/client';

type Msg = Record<string, any>;

/** One client socket as the fake hub sees it. */
interface Peer {
  ws: WebSocket;
  url: string;
  send(message: object): void;
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 7, 7]);

const SERVICES = [{ service_id: 1, service_name: 'image_transform_service' }];
const INFO = {
  service_id: 1,
  service_name: 'image_transform_service',
  service_description: 'Rotates a picture',
  arguments: [
    { argument_name: 'image', argument_description: 'The picture', type: 'image' },
    { argument_name: 'angle', argument_description: 'Degrees', type: 'int', choices: [90, 180] },
  ],
};

/**
 * A tiny stand-in for the hub: `/client` WebSocket (frames through the protocol's own codec),
 * `/services_list` and `/service_info/{id}`. Each test says how it answers with `onMessage`.
 */
class FakeHub {
  readonly server = http.createServer((req, res) => this.#rest(req, res));
  readonly wss: WebSocketServer;
  readonly peers: Peer[] = [];
  /** Every message from a client, in order, attachments resolved (`data` Buffers). */
  readonly received: Msg[] = [];
  readonly restRequests: Array<{ url: string; authorization?: string }> = [];
  /** Answers each message from a client. */
  onMessage: (msg: Msg, peer: Peer) => void = () => {};
  /** How many upgrades to refuse, and with which status. */
  refuse = { count: 0, status: 503 };
  #waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];

  constructor() {
    this.wss = new WebSocketServer({
      server: this.server,
      path: '/client',
      verifyClient: (_info, done) => {
        if (this.refuse.count > 0) {
          this.refuse.count--;
          done(false, this.refuse.status);
        } else done(true);
      },
    });
    this.wss.on('connection', (ws, req) => {
      const peer: Peer = {
        ws,
        url: req.url ?? '',
        send: (message) => {
          const { text, binaries } = encodeMessage(message);
          ws.send(text);
          for (const b of binaries) ws.send(b, { binary: true });
        },
      };
      this.peers.push(peer);
      const decoder = new FrameDecoder({
        onMessage: (m) => {
          // Every frame of the client SDK is checked against the contract (a stray one fails the test).
          checkFrame('clientToHub', m, 'the fake hub');
          this.received.push(m);
          const i = this.#waiters.findIndex((w) => w.pred(m));
          if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(m);
          this.onMessage(m, peer);
        },
        onError: (e) => {
          throw e;
        },
      });
      ws.on('message', (data, isBinary) => decoder.push(data as Buffer, isBinary));
      ws.on('error', () => {});
      peer.send({ type: 'services', services: SERVICES });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The latest connected peer. */
  get peer(): Peer {
    return this.peers[this.peers.length - 1];
  }

  /** The first message (received already or to come) matching `pred`. */
  next(pred: (m: Msg) => boolean, timeoutMs = 3000): Promise<Msg> {
    const seen = this.received.find(pred);
    if (seen) {
      this.received.splice(this.received.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake hub: no matching message in ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          this.received.splice(this.received.indexOf(m), 1);
          resolve(m);
        },
      });
    });
  }

  /** Cuts every client socket without a close handshake, as a network failure would. */
  cut(): void {
    for (const p of this.peers) p.ws.terminate();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  #rest(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.restRequests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '').split('?')[0];
    if (path === '/services_list') return json(200, SERVICES);
    if (path === '/service_info/1') return json(200, INFO);
    if (path.startsWith('/service_info/')) return json(404, { error: { code: 'service_not_found', message: 'no service has this id' } });
    json(404, { error: { code: 'not_found', message: 'no such route' } });
  }
}

/** A hub that accepts every add_task as task `T<n>` and leaves the rest to the test. */
function accepting(hub: FakeHub, then?: (taskId: string, msg: Msg, peer: Peer) => void): void {
  let n = 0;
  hub.onMessage = (msg, peer) => {
    if (msg.type !== 'add_task') return;
    const taskId = `T${++n}`;
    peer.send({ type: 'accepted', ref: msg.ref, task_id: taskId, position: 0 });
    then?.(taskId, msg, peer);
  };
}

describe('HubClient (against a fake hub)', () => {
  let hub: FakeHub;
  let url: string;
  const clients: HubClient[] = [];
  const client = (options: HubClientOptions = {}) => {
    const c = new HubClient(url, { minDelayMs: 10, maxDelayMs: 50, ...options });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    hub = new FakeHub();
    url = await hub.listen();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await hub.close();
  });

  describe('#run', () => {
    it('resolves with the result and reports progress on the way', async () => {
      accepting(hub, (id, _msg, peer) => {
        peer.send({ type: 'started', task_id: id, seq: 1, attempt: 1 });
        peer.send({ type: 'progress', task_id: id, seq: 2, progress: 0.5, message: 'half way' });
        peer.send({ type: 'result', task_id: id, seq: 3, result: { answer: 42 } });
      });
      const c = client();
      const progress: TaskProgress[] = [];
      const result = await c.run(1, { angle: 90 }, { onProgress: (p) => progress.push(p), timeoutMs: 5000, queueTimeoutMs: 100 });
      expect(result).to.deep.equal({ answer: 42 });
      expect(progress).to.deep.equal([{ seq: 2, progress: 0.5, message: 'half way' }]);
      const sent = (await hub.next((_m) => true)) as Msg;
      expect(sent).to.deep.include({ type: 'add_task', service_id: 1, args: { angle: 90 }, timeout_ms: 5000, queue_timeout_ms: 100 });
      expect(sent.ref).to.be.a('string');
    });

    it('gives a handle with typed events, its task id and its state', async () => {
      accepting(hub, (id, _msg, peer) => {
        setTimeout(() => {
          peer.send({ type: 'queued', task_id: id, seq: 1, position: 3 });
          peer.send({ type: 'started', task_id: id, seq: 2, attempt: 2 });
          peer.send({ type: 'result', task_id: id, seq: 3, result: 'ok' });
        }, 20);
      });
      const c = client();
      const h = c.submit<string>(1, [PNG, 90]);
      expect(h.taskId).to.equal(undefined);
      expect(h.state).to.equal('submitting');
      const events: string[] = [];
      h.on('accepted', (a) => events.push(`accepted ${a.taskId} ${a.position}`));
      h.on('queued', (q) => events.push(`queued ${q.position}`));
      h.on('started', (s) => events.push(`started ${s.attempt}`));
      h.on('result', (r) => events.push(`result ${r}`));
      expect(await h.accepted(), 'the same shape as the accepted event').to.deep.equal({ taskId: 'T1', position: 0 });
      expect(h.taskId).to.equal('T1');
      expect(await h.result()).to.equal('ok');
      expect(h.state).to.equal('succeeded');
      expect(h.done).to.equal(true);
      expect(events).to.deep.equal(['accepted T1 0', 'queued 3', 'started 2', 'result ok']);
    });
  });

  describe('media', () => {
    it('sends Buffer, Uint8Array and Blob media as attachments and hands result media back as Buffers', async () => {
      accepting(hub, (id, _msg, peer) => {
        peer.send({ type: 'progress', task_id: id, seq: 1, progress: 0.1, data: { mime: 'image/png', data: PNG.subarray(0, 4) } });
        peer.send({ type: 'result', task_id: id, seq: 2, result: { image: { mime: 'image/png', name: 'out.png', data: PNG }, size: 10 } });
      });
      const c = client();
      const previews: unknown[] = [];
      const result = (await c.run(
        1,
        {
          image: media(new Uint8Array(PNG), 'image/png', 'cat.png'),
          buf: { mime: 'application/octet-stream', data: PNG },
          blob: media(new Blob([PNG], { type: 'image/png' })),
          bare: new Blob([PNG.subarray(0, 2)], { type: 'text/plain' }),
          link: { url: 'https://example.com/x.png', mime: 'image/png' },
        },
        { onProgress: (p) => previews.push(p.data) },
      )) as Msg;

      const sent = await hub.next((m) => m.type === 'add_task');
      expect(sent.attachments).to.equal(4);
      expect(sent.args.image).to.deep.equal({ mime: 'image/png', name: 'cat.png', data: PNG });
      expect(sent.args.buf).to.deep.equal({ mime: 'application/octet-stream', data: PNG });
      expect(sent.args.blob).to.deep.equal({ mime: 'image/png', data: PNG });
      expect(sent.args.bare).to.deep.equal({ mime: 'text/plain', data: PNG.subarray(0, 2) });
      expect(sent.args.link).to.deep.equal({ url: 'https://example.com/x.png', mime: 'image/png' });

      expect(Buffer.isBuffer(result.image.data)).to.equal(true);
      expect(result.image).to.deep.equal({ mime: 'image/png', name: 'out.png', data: PNG });
      expect(result.size).to.equal(10);
      expect(previews).to.deep.equal([{ mime: 'image/png', data: PNG.subarray(0, 4) }]);
    });

    it('keeps an argument named "data" an argument', async () => {
      accepting(hub, (id, _msg, peer) => peer.send({ type: 'result', task_id: id, seq: 1, result: null }));
      await client().run(1, { data: PNG, mime: 'x' });
      const sent = await hub.next((m) => m.type === 'add_task');
      expect(sent.args).to.deep.equal({ data: { data: PNG }, mime: 'x' });
    });

    it('refuses more than 16 attachments with payload_too_large before sending', async () => {
      const err = await client()
        .run(
          1,
          Array.from({ length: 17 }, () => PNG),
        )
        .catch((e: unknown) => e);
      expect(err).to.be.instanceOf(HubError);
      expect((err as HubError).code).to.equal('payload_too_large');
    });
  });

  describe('several hub URLs', () => {
    it('refuses an empty list, naming the option', () => {
      expect(() => new HubClient([])).to.throw(TypeError, /HubClient option url: an empty list/);
    });

    it('moves to the next hub when its socket drops: the unaccepted submit goes there with its key, and REST follows', async () => {
      const other = new FakeHub();
      const otherUrl = await other.listen();
      try {
        const c = new HubClient([url, otherUrl], { minDelayMs: 10, maxDelayMs: 50 });
        clients.push(c);
        expect(c.options.hubs.map((h) => h.httpBase)).to.deep.equal([url, otherUrl]);
        // The first hub reads the submit, then dies before it accepts it.
        const h = c.submit(1, { angle: 90 }, { idempotencyKey: 'key-1' });
        const first = await hub.next((m) => m.type === 'add_task');
        await hub.close();
        accepting(other, (id, _msg, peer) => peer.send({ type: 'result', task_id: id, seq: 1, result: 'done' }));
        const again = await other.next((m) => m.type === 'add_task');
        expect(again.idempotency_key).to.equal('key-1').and.equal(first.idempotency_key);
        expect(await h.result()).to.equal('done');
        await c.services();
        expect(other.restRequests.map((r) => r.url)).to.deep.equal(['/services_list']);
      } finally {
        await other.close();
      }
    });

    it('follows its unfinished tasks again on the next hub (subscribe)', async () => {
      const other = new FakeHub();
      const otherUrl = await other.listen();
      try {
        accepting(hub);
        const c = new HubClient([url, otherUrl], { minDelayMs: 10, maxDelayMs: 50 });
        clients.push(c);
        const h = c.submit(1, { angle: 90 });
        const { taskId } = await h.accepted();
        other.onMessage = (msg, peer) => {
          if (msg.type === 'subscribe') peer.send({ type: 'result', task_id: msg.task_id, seq: 3, result: 'there' });
        };
        await hub.close();
        expect((await other.next((m) => m.type === 'subscribe')).task_id).to.equal(taskId);
        expect(await h.result()).to.equal('there');
      } finally {
        await other.close();
      }
    });
  });

  describe('reconnect', () => {
    it('resubscribes after the socket is cut and delivers the result once', async () => {
      accepting(hub, (id, _msg, peer) => {
        peer.send({ type: 'started', task_id: id, seq: 1, attempt: 1 });
        peer.send({ type: 'progress', task_id: id, seq: 2, progress: 0.3 });
      });
      const c = client();
      const events: string[] = [];
      c.on('connected', () => events.push('connected'));
      c.on('disconnected', () => events.push('disconnected'));
      const h = c.submit(1, { angle: 90 });
      let results = 0;
      const progress: number[] = [];
      h.on('result', () => results++);
      h.on('progress', (p) => progress.push(p.progress!));
      h.on('started', () => events.push('started'));
      await h.accepted();
      await hub.next((m) => m.type === 'add_task');
      await until(() => progress.length > 0, 'the progress event');
      expect(progress).to.deep.equal([0.3]);

      // While the client is away the task moves on and ends; on subscribe the hub tells the end
      // again with its original seq, and a late duplicate of older events must count for nothing.
      hub.onMessage = (msg, peer) => {
        if (msg.type !== 'subscribe') return;
        peer.send({ type: 'started', task_id: msg.task_id, seq: 1, attempt: 1 });
        peer.send({ type: 'result', task_id: msg.task_id, seq: 4, result: 'done' });
        peer.send({ type: 'result', task_id: msg.task_id, seq: 4, result: 'done' });
      };
      hub.cut();
      expect(await h.result()).to.equal('done');
      const sub = await hub.next((m) => m.type === 'subscribe');
      expect(sub.task_id).to.equal('T1');
      await sleep(50);
      expect(results).to.equal(1);
      expect(events).to.deep.equal(['connected', 'started', 'disconnected', 'connected']);
      expect(hub.peers.length).to.equal(2);
    });

    it('sends a submission again when the socket died before the hub accepted it', async () => {
      let first = true;
      accepting(hub, (id, _msg, peer) => peer.send({ type: 'result', task_id: id, seq: 1, result: 'made' }));
      const accept = hub.onMessage;
      hub.onMessage = (msg, peer) => {
        if (msg.type === 'add_task' && first) {
          first = false;
          peer.ws.terminate();
          return;
        }
        accept(msg, peer);
      };
      expect(await client().run(1, { angle: 90 })).to.equal('made');
      const [a, b] = [await hub.next((m) => m.type === 'add_task'), await hub.next((m) => m.type === 'add_task')];
      expect(a).to.deep.equal(b);
    });

    it('takes a snapshot after a reconnect, then only newer events', async () => {
      accepting(hub, (id, _msg, peer) => peer.send({ type: 'started', task_id: id, seq: 1, attempt: 1 }));
      const c = client();
      const progress: TaskProgress[] = [];
      const done = c.run(1, {}, { onProgress: (p) => progress.push(p) });
      await hub.next((m) => m.type === 'add_task');
      await sleep(20);
      hub.onMessage = (msg, peer) => {
        if (msg.type !== 'subscribe') return;
        const t = msg.task_id;
        peer.send({ type: 'snapshot', task_id: t, seq: 3, status: 'running', progress: 0.6, message: 'working', position: null });
        peer.send({ type: 'progress', task_id: t, seq: 3, progress: 0.6 }); // seen in the snapshot already
        peer.send({ type: 'progress', task_id: t, seq: 4, progress: 0.9 });
        peer.send({ type: 'result', task_id: t, seq: 5, result: 7 });
      };
      hub.cut();
      expect(await done).to.equal(7);
      expect(progress).to.deep.equal([
        { seq: 3, progress: 0.6, message: 'working' },
        { seq: 4, progress: 0.9 },
      ]);
    });

    it('holds a submission made while the hub refuses upgrades until it lets the client in', async () => {
      hub.refuse = { count: 3, status: 503 };
      accepting(hub, (id, _msg, peer) => peer.send({ type: 'result', task_id: id, seq: 1, result: 'late but fine' }));
      const c = client();
      const errors: Error[] = [];
      c.on('error', (e) => errors.push(e));
      expect(await c.run(1, {})).to.equal('late but fine');
      expect(errors.length).to.equal(3);
    });

    it('fails a submission that waited longer than connectTimeoutMs with timeout', async () => {
      hub.refuse = { count: 1000, status: 503 };
      const err = await client({ connectTimeoutMs: 100 })
        .run(1, {})
        .catch((e: unknown) => e);
      expect(err).to.be.instanceOf(HubError);
      expect((err as HubError).code).to.equal('timeout');
    });

    it('fails waiting submissions at once with unauthorized when the hub refuses the key', async () => {
      hub.refuse = { count: 1000, status: 401 };
      const started = Date.now();
      const err = await client({ connectTimeoutMs: 5000 })
        .run(1, {})
        .catch((e: unknown) => e);
      expect((err as HubError).code).to.equal('unauthorized');
      expect(Date.now() - started).to.be.below(1000);
    });
  });

  describe('errors', () => {
    it('rejects with the code of a rejection and its details', async () => {
      hub.onMessage = (msg, peer) => {
        if (msg.type === 'add_task') {
          peer.send({
            type: 'rejected',
            ref: msg.ref,
            error: { code: 'invalid_args', message: 'bad', details: [{ argument_name: 'angle', problem: 'expected int' }] },
          });
        }
      };
      const c = client();
      const h = c.submit(1, { angle: 'x' });
      const failed: HubError[] = [];
      h.on('failed', (e) => failed.push(e));
      const err = (await h.result().catch((e: unknown) => e)) as HubError;
      expect(err).to.be.instanceOf(HubError);
      expect(err.code).to.equal('invalid_args');
      expect(err.status).to.equal(400);
      expect(err.details.details).to.deep.equal([{ argument_name: 'angle', problem: 'expected int' }]);
      expect(failed).to.deep.equal([err]);
      await h.accepted().then(
        () => expect.fail('accepted'),
        (e: HubError) => expect(e.code).to.equal('invalid_args'),
      );
    });

    it("rejects with task_failed and the worker's error when the task fails", async () => {
      accepting(hub, (id, _msg, peer) =>
        peer.send({
          type: 'failed',
          task_id: id,
          seq: 1,
          error: { code: 'task_failed', message: 'the worker failed', worker_error: { code: 'bad_image', message: 'not a PNG' } },
        }),
      );
      const err = (await client()
        .run(1, {})
        .catch((e: unknown) => e)) as HubError;
      expect(err.code).to.equal('task_failed');
      expect(err.details.worker_error).to.deep.equal({ code: 'bad_image', message: 'not a PNG' });
      expect(err.details.task_id).to.equal('T1');
    });

    it('refuses a malformed submission without sending it', async () => {
      const err = (await client()
        .run(-1, {})
        .catch((e: unknown) => e)) as HubError;
      expect(err.code).to.equal('bad_request');
      const err2 = (await client()
        .run(1, {}, { timeoutMs: 0 })
        .catch((e: unknown) => e)) as HubError;
      expect(err2.code).to.equal('bad_request');
      expect(hub.received.filter((m) => m.type === 'add_task')).to.deep.equal([]);
    });
  });

  describe('cancel', () => {
    it('sends cancel and rejects the result with canceled', async () => {
      accepting(hub, (id, _msg, peer) => peer.send({ type: 'started', task_id: id, seq: 1, attempt: 1 }));
      hub.onMessage = ((inner) => (msg: Msg, peer: Peer) => {
        inner(msg, peer);
        if (msg.type === 'cancel') peer.send({ type: 'canceled', task_id: msg.task_id, seq: 2 });
      })(hub.onMessage);
      const c = client();
      const h = c.submit(1, {});
      let canceled = 0;
      h.on('canceled', () => canceled++);
      await h.accepted();
      await h.cancel();
      expect(await hub.next((m) => m.type === 'cancel')).to.deep.equal({ type: 'cancel', task_id: 'T1' });
      const err = (await h.result().catch((e: unknown) => e)) as HubError;
      expect(err.code).to.equal('canceled');
      expect(h.state).to.equal('canceled');
      expect(canceled).to.equal(1);
      await h.cancel(); // a second cancel is a no-op
    });

    it('cancels through an AbortSignal, sent once the hub names the task', async () => {
      hub.onMessage = (msg, peer) => {
        if (msg.type === 'add_task') setTimeout(() => peer.send({ type: 'accepted', ref: msg.ref, task_id: 'T9', position: 0 }), 50);
        if (msg.type === 'cancel') peer.send({ type: 'canceled', task_id: msg.task_id, seq: 1 });
      };
      const abort = new AbortController();
      const done = client().run(1, {}, { signal: abort.signal });
      await hub.next((m) => m.type === 'add_task');
      abort.abort();
      const err = (await done.catch((e: unknown) => e)) as HubError;
      expect(err.code).to.equal('canceled');
      expect((await hub.next((m) => m.type === 'cancel')).task_id).to.equal('T9');
    });

    it('keeps the result of a task that ended before the cancel arrived', async () => {
      accepting(hub);
      hub.onMessage = ((inner) => (msg: Msg, peer: Peer) => {
        inner(msg, peer);
        if (msg.type === 'cancel') {
          peer.send({ type: 'result', task_id: msg.task_id, seq: 1, result: 'first' });
          peer.send({ type: 'error', code: 'already_finished', message: 'ended', task_id: msg.task_id });
        }
      })(hub.onMessage);
      const c = client();
      const errors: Error[] = [];
      c.on('error', (e) => errors.push(e));
      const h = c.submit(1, {});
      await h.accepted();
      await h.cancel();
      expect(await h.result()).to.equal('first');
      expect(errors).to.deep.equal([]);
    });
  });

  describe('services', () => {
    it("reads the list by REST with the key, and follows the hub's pushes", async () => {
      const c = client({ key: 'sekret' });
      const pushed: unknown[] = [];
      c.on('services', (s) => pushed.push(s));
      expect(await c.services()).to.deep.equal(SERVICES);
      expect(hub.restRequests[0]).to.deep.equal({ url: '/services_list', authorization: 'Bearer sekret' });
      await c.connect();
      await until(() => pushed.length > 0, 'the services pushed on connect');
      expect(pushed).to.deep.equal([SERVICES]);
      expect(c.lastServices).to.deep.equal(SERVICES);
      expect(hub.peer.url).to.equal('/client?key=sekret');
      hub.peer.send({ type: 'services', services: [] });
      await until(() => pushed.length > 1, 'the second push');
      expect(pushed).to.deep.equal([SERVICES, []]);
    });

    it('describes a service over the socket when connected, else by REST', async () => {
      hub.onMessage = (msg, peer) => {
        if (msg.type !== 'service_info') return;
        if (msg.service_id === 1) peer.send({ type: 'service_info', ref: msg.ref, service: INFO });
        else peer.send({ type: 'rejected', ref: msg.ref, error: { code: 'service_not_found', message: 'no' } });
      };
      const c = client();
      expect(await c.serviceInfo(1)).to.deep.equal(INFO);
      expect(hub.restRequests.map((r) => r.url)).to.deep.equal(['/service_info/1']);
      expect(((await c.serviceInfo(2).catch((e: unknown) => e)) as HubError).code).to.equal('service_not_found');
      await c.connect();
      expect(await c.serviceInfo(1)).to.deep.equal(INFO);
      expect(((await c.serviceInfo(5).catch((e: unknown) => e)) as HubError).code).to.equal('service_not_found');
      expect(hub.restRequests.length).to.equal(2);
      expect(hub.received.filter((m) => m.type === 'service_info').length).to.equal(2);
    });
  });

  describe('#subscribe', () => {
    it('follows a task by id and fails with task_not_found for one the hub does not know', async () => {
      hub.onMessage = (msg, peer) => {
        if (msg.type !== 'subscribe') return;
        if (msg.task_id === 'known') peer.send({ type: 'result', task_id: 'known', seq: 3, result: 1 });
        else peer.send({ type: 'error', code: 'task_not_found', message: 'no task has this id', task_id: msg.task_id });
      };
      const c = client();
      expect(await c.subscribe('known').result()).to.equal(1);
      expect(
        (
          (await c
            .subscribe('gone')
            .result()
            .catch((e: unknown) => e)) as HubError
        ).code,
      ).to.equal('task_not_found');
    });

    it('rejects an empty, missing or overlong id at once, sending nothing', async () => {
      const c = client();
      for (const id of ['', undefined, null, 5, 'x'.repeat(65)]) {
        const h = c.subscribe(id as unknown as string);
        const err = (await Promise.race([h.result().catch((e: unknown) => e), new Promise((r) => setTimeout(() => r('unsettled'), 2000))])) as HubError;
        expect(err, String(id)).to.be.instanceOf(HubError);
        expect(err.code).to.equal('bad_request');
        expect(((await h.accepted().catch((e: unknown) => e)) as HubError).code).to.equal('bad_request');
      }
      expect(hub.received.filter((m) => m.type === 'subscribe')).to.deep.equal([]);
    });
  });

  describe('without Buffer, as in a browser', () => {
    // A child process loads the SDK while Node's Buffer is hidden, so the SDK must do without it
    // (the `ws` package, imported later, still finds it).
    const CHILD = `
      const saved = globalThis.Buffer;
      delete globalThis.Buffer;
      const { HubClient, media } = await import('@utils-hub/client');
      globalThis.Buffer = saved;
      const c = new HubClient(process.env.HUB_URL, { minDelayMs: 10 });
      const r = await c.run(1, { image: media(new Blob([new Uint8Array([1, 2, 3])]), 'image/png') });
      console.log(JSON.stringify({ kind: r.data.constructor.name, bytes: [...r.data], mime: r.mime }));
      await c.close();
    `;

    it('sends and receives media as Uint8Array', async () => {
      accepting(hub, (id, msg, peer) =>
        peer.send({ type: 'result', task_id: id, seq: 1, result: { mime: 'image/png', data: Buffer.from([...msg.args.image.data].reverse()) } }),
      );
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--input-type=module', '-e', CHILD], { env: { ...process.env, HUB_URL: url }, timeout: 10_000 }, (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
        ),
      );
      expect(JSON.parse(out)).to.deep.equal({ kind: 'Uint8Array', bytes: [3, 2, 1], mime: 'image/png' });
    });
  });

  describe('#close', () => {
    it('returns the same promise twice and fails what was unfinished with interrupted', async () => {
      accepting(hub);
      const c = client();
      const h = c.submit(1, {});
      await h.accepted();
      const p1 = c.close();
      const p2 = c.close();
      expect(p1).to.equal(p2);
      await p1;
      const err = (await h.result().catch((e: unknown) => e)) as HubError;
      expect(err.code).to.equal('interrupted');
      expect(err.details.task_id).to.equal('T1');
      expect(((await c.run(1, {}).catch((e: unknown) => e)) as HubError).code).to.equal('interrupted');
      expect(c.connected).to.equal(false);
    });
  });
});
