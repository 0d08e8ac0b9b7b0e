/**
 * `buildApp(options)`: the whole hub as a fastify instance, apart from `listen()`, so that tests
 * start it on port 0 in process and the command line starts it for real.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import websocket from '@fastify/websocket';
import swagger from '@fastify/swagger';
import type { Knex } from 'knex';
import { hostname } from 'node:os';
import { nanoid } from 'nanoid';
import { HubError } from '@utils-hub/protocol';
import { loadConfig, type HubConfig } from './config.js';
import { openDb, migrate } from './db/index.js';
import { upsertService, listServices } from './store/services.js';
import { listWorkers } from './store/workers.js';
import { verifyToken, countTokens } from './store/tokens.js';
import { TaskStore } from './store/tasks.js';
import { WriteHealth } from './store/write-health.js';
import { Registry } from './core/registry.js';
import { Hub } from './core/hub.js';
import { Gatekeeper, bearer, originAllowed, type ClientIdentity } from './access/auth.js';
import { Heartbeat } from './transport/heartbeat.js';
import { Dialer } from './transport/dialer.js';
import { TaskPersistence } from './core/task-persistence.js';
import { serveWorker } from './transport/worker-conn.js';
import { serveClient } from './transport/client-conn.js';
import { restRoutes } from './http/rest.js';
import { operatorRoutes } from './http/operator.js';
import { json, sharedSchemas, swaggerOptions } from './http/openapi.js';
import { Type } from '@sinclair/typebox';
import { plainSerializerCompiler, validatorCompiler } from './http/schema-compilers.js';
import { RateLimiter, clientIdentity } from './access/rate-limit.js';
import { IdempotentSubmits, keyScope } from './delivery/idempotency.js';
import { sseRoutes } from './delivery/sse.js';
import { Webhooks } from './delivery/webhooks.js';

declare module 'fastify' {
  interface FastifyInstance {
    hub: Hub;
    hubConfig: Readonly<HubConfig>;
  }
  interface FastifyContextConfig {
    /** Open without a client key (health, static page). */
    public?: boolean;
    /**
     * The route takes the client key as `?key=` too, where a header cannot be set: an event
     * stream (`GET /tasks/{id}/events`, EventSource) sets this. Other REST routes take only
     * the `Authorization` header (a key in a URL ends up in logs and histories).
     */
    queryKey?: boolean;
  }
  interface FastifyRequest {
    /** The client key's identity (set by the key check); null while no key is required. */
    client?: ClientIdentity | null;
  }
}

/** A pino options object gets the hub's id in every line's bindings (`hub_id`), unless it sets its own `base`. */
function loggerWithHubId(logger: FastifyServerOptions['logger'], hubId: string): FastifyServerOptions['logger'] {
  if (!logger || typeof logger !== 'object' || 'base' in logger) return logger;
  return { ...logger, base: { pid: process.pid, hostname: hostname(), hub_id: hubId } };
}

/** Options of buildApp: any hub option (section 9), plus the fastify logger. */
export interface BuildOptions extends Partial<HubConfig> {
  /** A fastify logger option; default: pino at `logLevel`. */
  logger?: FastifyServerOptions['logger'];
  /** An open knex instance to use instead of opening `db` (the caller then owns it). */
  knex?: Knex;
}

/**
 * Lets go of the HTTP exchange that opened a WebSocket. @fastify/websocket keeps it for the
 * connection's life: the socket names the upgrade's response (`_httpMessage`, set by
 * `assignSocket`), and its error listener holds the request and reply, which hold their logger,
 * headers and the response's listeners: about 2 KB per idle connection, of which the
 * connection needs none (serveClient and serveWorker take what they need from the request
 * before this returns, and log socket errors themselves).
 */
function releaseUpgrade(socket: WebSocket, req: FastifyRequest): void {
  const raw = req.raw.socket as Socket & { _httpMessage?: ServerResponse | null };
  if (raw._httpMessage) raw._httpMessage.detachSocket(raw);
  socket.removeAllListeners('error');
  socket.on('error', () => {}); // the connection's own listener is added next; never an unhandled 'error'
}

export async function buildApp(options: BuildOptions = {}): Promise<FastifyInstance> {
  const { logger, knex: givenDb, ...overrides } = options;
  const loaded = loadConfig({}, overrides);
  // Every hub has a name in its logs, metrics and operator page (and, in a cluster, /healthz and
  // the cluster): HUB_ID, else a new one at each start.
  const hubId = loaded.hubId ?? `hub-${nanoid(8)}`;
  const config = loaded.hubId ? loaded : Object.freeze({ ...loaded, hubId });
  const app = Fastify({
    logger: loggerWithHubId(logger ?? { level: config.logLevel }, hubId),
    bodyLimit: config.maxMessageBytes,
    // On close, end every socket, also those a refused upgrade left open: a peer cannot hold the hub up.
    forceCloseConnections: true,
    // One line per task end, none per request (docs/protocol.md leaves logs to us; requests are many).
    logController: new LogController({ disableRequestLogging: true }),
    // Ids of tasks and services are validated by the routes; keep the router's own limit generous.
    routerOptions: { maxParamLength: 512 },
    // `__proto__` and `constructor` are plain names in a body, as on the WebSocket (JSON.parse makes
    // them own keys; the protocol reads own keys only): an arg of that name is `invalid_args`.
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    // A path the router cannot read (broken percent-encoding, a parameter over its limit) gets the
    // contract's error body rather than fastify's own.
    frameworkErrors: (err, _req, reply) => {
      const bad = new HubError('bad_request', err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : 'the path is not a valid URL');
      void (reply as FastifyReply).code(bad.status).send(bad.toBody());
    },
  });

  // The routes declare their schemas: checked with the protocol's validators, failures in the
  // contract's error body; @fastify/swagger documents them (it must see every route: first).
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(plainSerializerCompiler);
  for (const schema of sharedSchemas()) app.addSchema(schema);
  await app.register(swagger, swaggerOptions());

  // The database's own warnings (a lost connection, a retry) go to the hub's log, not to stderr.
  const db = givenDb ?? openDb(config.db, { log: (level, message) => app.log[level === 'error' ? 'error' : 'warn']({ db: 'knex' }, message) });
  await migrate(db);
  const registry = new Registry({
    load: async () => (await listServices(db)).map((s) => ({ id: s.id, me: s.me })),
    upsert: (me) => upsertService(db, me),
  });
  await registry.load();
  // Failed writes are logged and counted, and a store that keeps failing makes /readyz say 503.
  // HUB_COMMIT=stored: group commit (a write starts at the event loop's next turn and takes every
  // row that came in during the previous one); async: rows written behind, in batches every 50 ms.
  const writes = new WriteHealth(app.log, config.storeFailingMs);
  const tasks = new TaskStore(db, {
    backlogBytes: config.storeBacklogBytes,
    onError: writes.onError,
    flushDelayMs: config.commit === 'stored' ? 0 : 50,
    // A webhook body over its bound leaves the result out and says where to read it.
    maxDeliveryBytes: config.webhookMaxBodyBytes,
    taskUrl: (id) => `${config.publicUrl ?? ''}/tasks/${id}`,
    hubId: config.broker ? hubId : null,
  });
  writes.watch(tasks);
  const store = new TaskPersistence(tasks, config);
  // In a cluster the other hubs hold tasks of their own: none is marked interrupted at start
  // (docs/cluster.md "A hub may die").
  if (!config.broker) {
    const interrupted = await store.markInterrupted();
    if (interrupted > 0) app.log.warn({ count: interrupted }, 'tasks left unfinished by a previous run now read failed/interrupted');
  }
  await store.purge();
  const submits = new IdempotentSubmits(db, { store: tasks });
  await submits.purge();

  // Cluster mode is loaded only with HUB_BROKER: one hub alone runs none of its code.
  const clusterHub = config.broker ? (await import('./cluster/cluster-hub.js')).ClusterHub : null;
  const hub = clusterHub ? new clusterHub(config, registry, store, app.log) : new Hub(config, registry, store, app.log);
  if (clusterHub) {
    try {
      await (hub as InstanceType<typeof clusterHub>).join(db);
    } catch (err) {
      if (!givenDb) await db.destroy();
      throw new Error(`HUB_BROKER: could not join the cluster at ${config.broker}: ${(err as Error).message}`);
    }
  }
  const webhooks = new Webhooks(db, hub, app.log, tasks);
  const gate = new Gatekeeper(config, {
    verify: (kind, secret) => verifyToken(db, kind, secret),
    count: (kind) => countTokens(db, kind),
  });
  const heartbeat = new Heartbeat(config.heartbeatMs);

  const dialer = new Dialer({
    config,
    log: app.log,
    onFailure: () => hub.recordDialFailure(),
    listUrls: async () => {
      const urls = (await listWorkers(db, { enabledOnly: true })).map((w) => w.url);
      // In a cluster each listed worker is dialed by the one hub holding its lease.
      return clusterHub ? (hub as InstanceType<typeof clusterHub>).dialable(urls) : urls;
    },
    serve: (ws, url, onWelcome) => serveWorker(ws, { dialed: true, remote: url, token: null }, { hub, gate, heartbeat, onWelcome }),
  });

  const purgeTimer = setInterval(
    () => {
      hub.purgeEnded();
      store.purge().catch((err: unknown) => app.log.warn({ err: (err as Error).message }, 'purging ended tasks failed'));
      submits.purge().catch((err: unknown) => app.log.warn({ err: (err as Error).message }, 'purging idempotency keys failed'));
      webhooks.purge().catch((err: unknown) => app.log.warn({ err: (err as Error).message }, 'purging webhook deliveries failed'));
    },
    Math.min(60_000, Math.max(1000, config.resultTtlMs)),
  );
  purgeTimer.unref();

  app.decorate('hub', hub);
  app.decorate('hubConfig', config);

  app.setErrorHandler((err: unknown, req, reply) => {
    let e: HubError;
    const fe = err as { code?: string; statusCode?: number; message?: string };
    if (err instanceof HubError) e = err;
    else if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      e = new HubError('unsupported_media_type', 'send Content-Type: application/json with a JSON body');
    } else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new HubError('payload_too_large', `the body is over ${config.maxMessageBytes} bytes`);
    } else if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      e = new HubError('bad_request', fe.message ?? 'bad request');
    } else {
      req.log.error({ err }, 'request failed');
      e = new HubError('internal', 'internal error');
    }
    void reply.code(e.status).send(e.toBody());
  });
  // Which methods each path takes, for a 405 that names them (the router only says "not found").
  const routes: Array<{ method: string; path: RegExp }> = [];
  app.addHook('onRoute', (route) => {
    const path = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[^/]+/g, '[^/]+')}$`);
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, path });
  });
  // Bodies are JSON only: a text/plain body gets 415, not a confusing "body must be object".
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0].slice(0, 200);
    const allowed = [...new Set(routes.filter((r) => r.path.test(path)).map((r) => r.method))];
    if (allowed.length && !allowed.includes(req.method)) {
      void reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send(new HubError('method_not_allowed', `${path} takes ${allowed.join(' or ')}, not ${req.method}`, { allow: allowed }).toBody());
      return;
    }
    void reply.code(404).send(new HubError('not_found', `no route ${req.method} ${path}`).toBody());
  });

  const limiter = new RateLimiter(config.rateLimit);
  /** Client keys and rate limits (docs/protocol.md section 9). */
  const admitClient = async (req: FastifyRequest) => {
    // `?key=` only on the /client upgrade and on routes that declare it (event streams).
    const queryKey = req.routeOptions.url === '/client' || req.routeOptions.config?.queryKey === true;
    const key = bearer(req.raw, queryKey ? 'key' : null);
    req.client = await gate.client(key);
    if (!limiter.take(clientIdentity(key, req.socket.remoteAddress))) {
      throw new HubError('rate_limited', `more than ${config.rateLimit} requests per second from this client`);
    }
  };
  // Every route but the public ones and the WebSocket upgrades, which check in their preValidation
  // (a refusal must be answered before @fastify/websocket takes the socket).
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config?.public || req.routeOptions.url === '/client' || req.routeOptions.url === '/worker') return;
    await admitClient(req);
  });

  await app.register(websocket, {
    options: { maxPayload: config.maxMessageBytes, perMessageDeflate: false },
    errorHandler: (err, socket) => {
      app.log.warn({ err: err.message }, 'WebSocket handler failed');
      socket.terminate();
    },
  });

  const originCheck = async (req: FastifyRequest) => {
    if (!originAllowed(config, req.headers, (req.raw.socket as { encrypted?: boolean }).encrypted === true)) {
      throw new HubError('forbidden', 'this origin may not open this WebSocket');
    }
  };

  // A plain GET (no upgrade) on a WebSocket route gets the contract's error body, not an empty 404.
  const upgradeRequired = async () => {
    throw new HubError('bad_request', 'this route takes a WebSocket upgrade');
  };
  // A worker's token is looked at before the upgrade: a peer without one costs no frame parsing.
  const workerAdmit = async (req: FastifyRequest) => {
    await gate.workerUpgrade(bearer(req.raw, 'token'), req.socket.remoteAddress);
  };
  app.route({
    method: 'GET',
    url: '/worker',
    preValidation: [originCheck, workerAdmit],
    handler: upgradeRequired,
    wsHandler: (socket, req) => {
      releaseUpgrade(socket, req);
      if (hub.shuttingDown) {
        socket.close(1001, 'the hub is stopping');
        return;
      }
      serveWorker(socket, { dialed: false, remote: req.socket.remoteAddress ?? '', token: bearer(req.raw, 'token') }, { hub, gate, heartbeat });
    },
  });
  app.route({
    method: 'GET',
    url: '/client',
    preValidation: [originCheck, admitClient],
    handler: upgradeRequired,
    wsHandler: (socket, req) => {
      releaseUpgrade(socket, req);
      const who = clientIdentity(bearer(req.raw, 'key'), req.socket.remoteAddress);
      const key = bearer(req.raw, 'key');
      serveClient(socket, {
        hub,
        heartbeat,
        who: req.client ?? null,
        allow: limiter.enabled ? () => limiter.take(who) : undefined,
        submits,
        webhooks,
        keyScope: keyScope(key),
      });
    },
  });

  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        tags: ['operator'],
        operationId: 'healthz',
        summary: 'The process is up (no key needed)',
        security: [],
        response: { 200: json(Type.Object({ status: Type.Literal('ok'), hub_id: Type.Optional(Type.String()) }), 'Up; `hub_id` in cluster mode') },
      },
    },
    // A cluster member names itself (docs/cluster.md).
    async () => (config.broker ? { status: 'ok' as const, hub_id: config.hubId ?? undefined } : { status: 'ok' as const }),
  );

  await app.register(restRoutes, { hub, submits, webhooks });
  await app.register(sseRoutes, { hub });
  await app.register(operatorRoutes, { hub, db, writes });

  let closing: Promise<void> | null = null;
  app.addHook('preClose', async () => {
    dialer.close();
    await hub.shutdown(0);
  });
  app.addHook('onClose', async () => {
    closing ??= (async () => {
      clearInterval(purgeTimer);
      heartbeat.close();
      await webhooks.close().catch((err: unknown) => app.log.error({ err }, 'stopping the webhook sender failed'));
      if (clusterHub) await (hub as InstanceType<typeof clusterHub>).leave().catch((err: unknown) => app.log.error({ err }, 'leaving the cluster failed'));
      await store.close().catch((err: unknown) => app.log.error({ err }, 'flushing the task store failed'));
      if (!givenDb) await db.destroy();
    })();
    await closing;
  });

  app.addHook('onReady', async () => {
    if (config.workerTokens.length === 0 && (await countTokens(db, 'worker')) === 0) {
      app.log.warn('no worker token exists: only workers on loopback addresses may connect (create one with utils-hub tokens create)');
    }
    dialer.start();
    webhooks.start();
  });
  return app;
}
