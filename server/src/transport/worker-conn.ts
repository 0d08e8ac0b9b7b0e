/**
 * One worker connection, whichever side dialed: the hello/welcome handshake (docs/protocol.md 5.1)
 * with its deadline and refusals, then the worker's messages handed to the hub.
 */
import type { WebSocket } from 'ws';
import { nanoid } from 'nanoid';
import {
  jsonProblem,
  MAX_DESCRIPTION_DEPTH,
  checkServiceDescription,
  FrameDecoder,
  HubError,
  MAX_MESSAGE_DEPTH,
  parseMessage,
  PROTOCOL_VERSION,
  type WorkerToHubMessage,
} from '@utils-hub/protocol';
import type { Hub, ServiceClaim, WorkerLink } from '../core/hub.js';
import type { Gatekeeper } from '../access/auth.js';
import type { Heartbeat } from './heartbeat.js';
import { FloodGuard } from './flood.js';
import { workerFrame } from '../core/frames.js';
import { sendFrames } from './socket-send.js';
import { PRE_WELCOME_FRAME_BYTES } from '../core/bounds.js';

/** How a worker connection came about. */
export interface WorkerOrigin {
  /** True when the hub dialed the worker (its URL is in the `workers` table). */
  dialed: boolean;
  /** The peer's address, or the dialed URL. */
  remote: string;
  /** The token the worker presented, if it dialed the hub. */
  token: string | null;
}

export interface WorkerConnDeps {
  hub: Hub;
  gate: Gatekeeper;
  heartbeat: Heartbeat;
  /** Called once the worker is welcomed (the dialer resets its backoff). */
  onWelcome?: () => void;
}

/**
 * True when `value`, at nesting level `level` (a whole message is level 1, its members level 2,
 * the default), holds containers nested deeper than MAX_MESSAGE_DEPTH levels. Attachment bytes
 * are leaves. A result is written to the task store and served over REST as JSON, which cannot
 * write a value nested thousands deep; and a worker's text frame is forwarded to clients as it
 * came, so every member counts, not only `result` and `data`. Recursive, but never deeper than
 * MAX_MESSAGE_DEPTH + 1 calls (it answers true there), and allocates nothing: it runs on every
 * message of every worker.
 */
export function nestedTooDeep(value: unknown, level = 2): boolean {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return false;
  if (level > MAX_MESSAGE_DEPTH) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (nestedTooDeep(value[i], level + 1)) return true;
    return false;
  }
  // A parsed message's keys are its own (JSON.parse makes even "__proto__" an own key).
  for (const key in value) if (nestedTooDeep((value as Record<string, unknown>)[key], level + 1)) return true;
  return false;
}

/** Bytes of a frame as ws hands it (Buffer, ArrayBuffer or Buffer[]). */
function frameLength(data: unknown): number {
  if (Array.isArray(data)) return data.reduce((n: number, b: Buffer) => n + b.length, 0);
  return (data as { byteLength?: number }).byteLength ?? 0;
}

/** Takes over `ws` for the worker protocol; returns its connection id. */
export function serveWorker(ws: WebSocket, origin: WorkerOrigin, deps: WorkerConnDeps): string {
  const { hub } = deps;
  const id = nanoid(12);
  const log = hub.log.child({ connection_id: id });
  const flood = new FloodGuard();
  const maxBuffered = hub.config.maxBufferedBytes;
  let state = 'hello' as 'hello' | 'handshaking' | 'ready' | 'closed';
  let serviceId = -1;
  // Read through a function: the state changes while the handshake awaits. A refused connection
  // is closing before its close event comes: it must not be welcomed and take tasks.
  const isClosed = () => state === 'closed' || ws.readyState !== ws.OPEN;
  /** The registry's yes to the hello, held from then until the connection ends. */
  let claim: ServiceClaim | null = null;

  const link: { -readonly [K in keyof WorkerLink]: WorkerLink[K] } = {
    id,
    send: (text, binaries) => {
      sendFrames(ws, text, binaries, maxBuffered);
    },
    pause: () => ws.pause(),
    resume: () => ws.resume(),
  };

  const refuse = (err: HubError) => {
    hub.recordRejectedHandshake(err.code);
    log.warn({ code: err.code, remote: origin.remote }, `worker refused: ${err.message}`);
    sendFrames(ws, workerFrame({ type: 'error', code: err.code, message: err.message }), null, maxBuffered);
    ws.close(1008, err.code);
  };

  const badMessage = (err: HubError) => {
    hub.recordBadMessage('worker');
    if (state === 'hello' || state === 'handshaking') return refuse(new HubError('bad_message', err.message));
    sendFrames(ws, workerFrame({ ...err.details, type: 'error', code: err.code, message: err.message }), null, maxBuffered);
    if (flood.hit()) ws.close(1008, 'too many bad messages');
  };

  // Until `welcome`, one frame may hold at most PRE_WELCOME_FRAME_BYTES (more only when the
  // description bound needs it): ws checks a frame's length from its header, before reading its
  // payload, against its receiver's limit, which is set per socket at the upgrade; this lowers
  // it for the handshake and gives the hub's limit back at `welcome`. A socket without that
  // field (another ws) is held to the same bound when a frame arrives (below).
  const preWelcomeBytes = Math.max(PRE_WELCOME_FRAME_BYTES, hub.config.maxServiceBytes + 64 * 1024);
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  const setFrameLimit = (bytes: number) => {
    if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes;
  };
  setFrameLimit(Math.min(preWelcomeBytes, hub.config.maxMessageBytes));

  const helloTimer = setTimeout(() => {
    if (state === 'hello' || state === 'handshaking') {
      log.warn({ remote: origin.remote }, 'worker sent no hello in time');
      ws.close(1008, 'no hello in time');
    }
  }, hub.config.helloTimeoutMs);

  const handshake = async (msg: WorkerToHubMessage) => {
    if (msg.type !== 'hello') throw new HubError('bad_message', 'the first message must be "hello"');
    // The hub sends this connection no task over it (docs/protocol.md, "Frame limits").
    link.maxMessageBytes = msg.max_message_bytes;
    if (msg.protocol !== PROTOCOL_VERSION) {
      throw new HubError('unsupported_protocol', `this hub speaks protocol ${PROTOCOL_VERSION}, not ${msg.protocol}`);
    }
    // Measured before it is checked: a description's size is what the hub keeps of it, in
    // memory, in the database and in every `/service_info` answer.
    // Its nesting first: JSON.stringify of a value nested thousands deep overflows the stack.
    const nesting = jsonProblem(msg.me, MAX_DESCRIPTION_DEPTH);
    if (nesting) throw new HubError('bad_service_description', `the service description ${nesting}`);
    const size = Buffer.byteLength(JSON.stringify(msg.me) ?? '');
    if (size > hub.config.maxServiceBytes) {
      throw new HubError(
        'bad_service_description',
        `the service description is ${size} bytes, over the limit of ${hub.config.maxServiceBytes} (HUB_MAX_SERVICE_BYTES)`,
      );
    }
    const me = checkServiceDescription(msg.me);
    if (!origin.dialed) await deps.gate.worker(origin.token, origin.remote, me.name);
    if (hub.shuttingDown) throw new HubError('shutting_down', 'the hub is stopping');
    if (isClosed()) return;
    claim = await hub.claimService(me);
    serviceId = claim.serviceId;
    if (isClosed()) {
      claim.release();
      return;
    }
    const concurrency = msg.concurrency ?? 1;
    sendFrames(ws, workerFrame({ type: 'welcome', service_id: serviceId, connection_id: id, heartbeat_ms: hub.config.heartbeatMs }), null, maxBuffered);
    state = 'ready';
    setFrameLimit(hub.config.maxMessageBytes);
    clearTimeout(helloTimer);
    hub.attachWorker(link, claim, { instance: msg.instance ?? null, dialed: origin.dialed, remote: origin.remote, concurrency });
    log.info({ service: me.name, service_id: serviceId, instance: msg.instance, dialed: origin.dialed, concurrency }, 'worker connected');
    deps.onWelcome?.();
  };

  const onMessage = (message: Record<string, unknown>, raw: string, attachments: readonly Uint8Array[]) => {
    let msg: WorkerToHubMessage;
    try {
      msg = parseMessage('workerToHub', message);
    } catch (err) {
      return badMessage(err as HubError);
    }
    if (state === 'hello') {
      state = 'handshaking';
      handshake(msg).catch((err: unknown) => {
        if (state === 'closed') return;
        if (err instanceof HubError) return refuse(err);
        log.error({ err }, 'worker handshake failed');
        refuse(new HubError('internal', 'the hub could not complete the handshake'));
      });
      return;
    }
    if (state !== 'ready') return badMessage(new HubError('bad_message', 'wait for "welcome" before sending more'));
    // The whole frame, members the schema lets pass included: it goes to clients as it came.
    // (A hello is not forwarded: its description has its own bound, checkServiceDescription.)
    if (nestedTooDeep(message, 1)) {
      const taskId = typeof message.task_id === 'string' && message.task_id.length <= 64 ? { task_id: message.task_id } : {};
      return badMessage(new HubError('bad_message', `a message may nest at most ${MAX_MESSAGE_DEPTH} levels deep`, taskId));
    }
    const bins = attachments.length ? attachments : null;
    switch (msg.type) {
      case 'progress':
        hub.workerProgress(id, msg.task_id, msg.progress, msg.message, { raw, binaries: bins, value: msg.data });
        break;
      case 'result':
        hub.workerResult(id, msg.task_id, { raw, binaries: bins, value: msg.result });
        break;
      case 'failed':
        hub.workerFailed(id, msg.task_id, msg.error);
        break;
      case 'drain':
        hub.drainWorker(id);
        log.info('worker drains');
        break;
      case 'hello':
        badMessage(new HubError('bad_message', 'hello was already said on this connection'));
        break;
    }
  };

  const decoder = new FrameDecoder({
    maxAttachmentBytes: hub.config.maxMessageBytes,
    onMessage,
    onError: (err) => badMessage(err),
  });

  ws.on('message', (data, isBinary) => {
    if (state === 'closed') return;
    if (state !== 'ready' && frameLength(data) > preWelcomeBytes) {
      ws.close(1009, 'frame too large before welcome');
      return;
    }
    decoder.push(data as Buffer, isBinary);
  });
  ws.on('error', (err) => log.warn({ err: err.message }, 'worker socket error'));
  ws.on('close', (code, reason) => {
    const was = state;
    state = 'closed';
    clearTimeout(helloTimer);
    if (was === 'ready') {
      // Named in the `worker_lost` of a task that ran out of attempts (1009: a frame over the worker's limit).
      const text = reason.toString().slice(0, 123);
      hub.detachWorker(id, `close ${code}${text ? ` ${JSON.stringify(text)}` : ''}`);
      log.info({ code, service_id: serviceId }, 'worker disconnected');
    } else {
      claim?.release();
    }
  });
  deps.heartbeat.watch(ws);
  return id;
}
