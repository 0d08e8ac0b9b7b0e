/**
 * The operator routes (docs/protocol.md section 10): `/metrics`, `/readyz`, the live view's JSON
 * (`/api/overview`), the OpenAPI reference (`/docs`, `/docs/json`) and the page at `/`.
 *
 * Open without a client key: `/healthz` (in app.ts), `/readyz`, the page's static files and the
 * API reference (a description of the routes, holding no data). Everything that shows the hub's
 * state (`/metrics`, `/api/overview`) needs a key when keys are required.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Knex } from 'knex';
import fastifyStatic from '@fastify/static';
import swaggerUi from '@fastify/swagger-ui';
import type { Hub } from '../core/hub.js';
import { dbReady } from '../db/index.js';
import type { WriteHealth } from '../store/write-health.js';
import { createMetrics } from './metrics.js';
import { OverviewSource } from './overview.js';
import { errorResponses, json, ref } from './openapi.js';

/** Options of {@link operatorRoutes}. */
export interface OperatorOptions {
  hub: Hub;
  /** The hub's database, for `/readyz`. */
  db: Knex;
  /** The task store's failed writes, for `/metrics` and `/readyz`. */
  writes: WriteHealth;
  /** Where the built page lives. Default: `server/public/` (built by `npm run build`). */
  publicDir?: string;
}

/** The page's files, as esbuild writes them (server/scripts/build-web.mjs). */
const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
  '/favicon.svg': 'favicon.svg',
};

/**
 * What the page may load: its own files, images it made from results (`blob:`, `data:`), and
 * its own origin's WebSocket. Results come from workers, so nothing else runs.
 */
const PAGE_CSP =
  "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: data:; connect-src 'self'; " +
  "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export async function operatorRoutes(app: FastifyInstance, opts: OperatorOptions): Promise<void> {
  const { hub, db, writes } = opts;
  const metrics = createMetrics(hub, { writes });
  const overview = new OverviewSource(hub);

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operator'],
        operationId: 'metrics',
        summary: 'Prometheus metrics: tasks by service and end, durations, queues, connections, refusals',
        response: {
          200: { description: 'The Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
          ...errorResponses([]),
        },
      },
    },
    async (_req, reply) => {
      const { contentType, body } = await metrics.scrape();
      return reply.type(contentType).send(body);
    },
  );

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['operator'],
        operationId: 'readyz',
        summary: 'The database answers, its migrations are applied, the task store writes and the hub is not stopping (no key needed)',
        security: [],
        response: { 200: json(ref('Readiness'), 'Ready to take tasks'), 503: json(ref('Readiness'), 'Not ready; `reason` says why') },
      },
    },
    async (_req, reply) => {
      if (hub.shuttingDown) return reply.code(503).send({ status: 'not_ready', reason: 'the hub is stopping' });
      const readiness = await dbReady(db);
      if (!readiness.ready) return reply.code(503).send({ status: 'not_ready', reason: readiness.reason });
      const failing = writes.notReadyReason();
      if (failing) return reply.code(503).send({ status: 'not_ready', reason: failing });
      const other = hub.notReadyReason();
      if (other) return reply.code(503).send({ status: 'not_ready', reason: other });
      return { status: 'ready' };
    },
  );

  app.get(
    '/api/overview',
    {
      schema: {
        tags: ['operator'],
        operationId: 'overview',
        summary: "The live view of the page: the cluster's hubs, services with each connection's hub, queues and recent tasks",
        response: { 200: json(ref('Overview'), 'The hub now'), ...errorResponses([]) },
      },
    },
    () => overview.snapshot(),
  );

  await app.register(apiReference);
  await app.register(page, { dir: opts.publicDir ?? fileURLToPath(new URL('../../public/', import.meta.url)) });
}

/**
 * `/docs` (Swagger UI, served from its package: works offline) and `/docs/json`, the document
 * that @fastify/swagger (registered in app.ts, before every route) built from the routes.
 */
async function apiReference(app: FastifyInstance): Promise<void> {
  // Everything registered in this context is static: open without a key (see the file comment).
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true };
  });
  // @fastify/swagger-ui redirects `/docs/static/index.html` to `/docs/` by rewriting the whole
  // URL, query included: with a query the rewrite misses and the page redirects to itself forever.
  app.addHook('onRequest', async (req, reply) => {
    const q = req.url.indexOf('?');
    if (q >= 0 && req.url.slice(0, q) === '/docs/static/index.html') return reply.redirect(`/docs/${req.url.slice(q)}`);
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true, tryItOutEnabled: false } });
}

/** The page: a fixed list of built files, each open without a key. */
async function page(app: FastifyInstance, opts: { dir: string }): Promise<void> {
  await app.register(fastifyStatic, { root: opts.dir, serve: false });
  for (const [url, file] of Object.entries(PAGE_FILES)) {
    app.get(url, { config: { public: true } }, (_req, reply) => {
      if (!existsSync(`${opts.dir}/${file}`)) {
        return reply.code(503).type('text/plain; charset=utf-8').send(`The page is not built: run "npm run build" (it writes ${opts.dir}).\n`);
      }
      void reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
      if (file === 'index.html') void reply.header('content-security-policy', PAGE_CSP);
      return reply.sendFile(file);
    });
  }
}
