import { expect } from 'chai';
import { Validator } from '@seriousme/openapi-schema-validator';
import { AddTaskBody, ServiceInfo, TaskView } from '@utils-hub/protocol';
import { startHub, type TestHub } from '../helpers/hub.js';

/** Every `[METHOD, path]` the app serves, from fastify's route tree (HEAD left out). */
function servedRoutes(tree: string): Array<[string, string]> {
  const stack: string[] = [];
  const out: Array<[string, string]> = [];
  for (const line of tree.split('\n')) {
    const m = line.match(/^([│ ]*)[├└]── (.+) \(([A-Z, ]+)\)$/);
    if (!m) continue;
    const depth = m[1].length / 4;
    const path = (depth === 0 ? '' : stack[depth - 1]) + m[2];
    stack[depth] = path;
    for (const method of m[3].split(', ')) if (method !== 'HEAD') out.push([method, path]);
  }
  return out;
}

/** A path with its parameters unnamed, to compare fastify's `:id` with OpenAPI's `{task_id}`. */
const shape = (path: string) => path.replace(/:\w+|\{\w+\}/g, '{}');

/** Served by the hub but not REST: WebSocket upgrades, the page's files, the API reference itself. */
const NOT_REST = (path: string) => ['/worker', '/client', '/', '/app.js', '/app.css', '/favicon.svg'].includes(path) || path.startsWith('/docs');

describe('Operator', () => {
  describe('OpenAPI document', () => {
    let hub: TestHub;
    let doc: any;
    before(async () => {
      hub = await startHub({ apiKeys: ['docs-key'] });
      const res = await fetch(`${hub.url}/docs/json`);
      expect(res.status).to.equal(200);
      doc = await res.json();
    });
    after(() => hub.close());

    it('validates as OpenAPI 3.1', async () => {
      const result = await new Validator().validate(doc);
      expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).to.deep.equal([]);
      expect(result.valid).to.equal(true);
      expect(doc.openapi).to.equal('3.1.0');
    });

    it("is built from the routes' schemas, which are the protocol's", () => {
      const body = (path: string, method: string, status?: string) => {
        const op = doc.paths[path][method];
        return (status === undefined ? op.requestBody : op.responses[status]).content['application/json'].schema;
      };
      expect(body('/add_task', 'post')).to.deep.equal({ $ref: '#/components/schemas/AddTaskBody' });
      expect(body('/add_task', 'post', '200')).to.deep.equal({ $ref: '#/components/schemas/AddTaskSucceeded' });
      expect(body('/service_info/{id}', 'get', '200')).to.deep.equal({ $ref: '#/components/schemas/ServiceInfo' });
      expect(body('/tasks/{task_id}', 'get', '200')).to.deep.equal({ $ref: '#/components/schemas/TaskView' });
      expect(body('/tasks/{task_id}', 'delete', '200')).to.deep.equal({ $ref: '#/components/schemas/TaskView' });
      expect(doc.paths['/healthz'].get.security).to.deep.equal([]);
      expect(doc.paths['/readyz'].get.security).to.deep.equal([]);
      expect(doc.info.version)
        .to.match(/^\d+\.\d+\.\d+/)
        .and.not.equal('0.0.0');
      expect(doc.components.schemas.AddTaskBody).to.deep.equal(JSON.parse(JSON.stringify(AddTaskBody)));
      expect(doc.components.schemas.ServiceInfo).to.deep.equal(JSON.parse(JSON.stringify(ServiceInfo)));
      expect(doc.components.schemas.TaskView).to.deep.equal(JSON.parse(JSON.stringify(TaskView)));
    });

    it('lists every HTTP route the hub serves, and no other', () => {
      const served = servedRoutes(hub.app.printRoutes({ commonPrefix: false }))
        .filter(([, path]) => !NOT_REST(path))
        .map(([method, path]) => `${method} ${shape(path)}`)
        .sort();
      const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
        .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${shape(path)}`))
        .sort();
      expect(served).to.include.members(['GET /services_list', 'GET /service_info/{}', 'POST /add_task', 'GET /tasks/{}', 'DELETE /tasks/{}']);
      expect(documented).to.deep.equal(served);
    });

    it('gives every route of section 2 its error responses in the contract body', () => {
      const expected: Record<string, string[]> = {
        'get /services_list': ['401', '429', '500'],
        'get /service_info/{id}': ['400', '401', '404', '429', '500'],
        'post /add_task': ['400', '401', '404', '409', '413', '422', '429', '500', '502', '503', '504'],
        'get /tasks/{task_id}': ['401', '404', '429', '500'],
        'delete /tasks/{task_id}': ['401', '404', '409', '429', '500'],
        'get /tasks/{task_id}/events': ['400', '401', '404', '429', '500'],
      };
      for (const [key, statuses] of Object.entries(expected)) {
        const [method, path] = key.split(' ');
        const responses = doc.paths[path][method].responses as Record<string, any>;
        const errors = Object.keys(responses).filter((s) => Number(s) >= 400);
        expect(errors, key).to.deep.equal(statuses);
        for (const s of errors) {
          expect(responses[s].content['application/json'].schema.allOf[0], `${key} ${s}`).to.deep.equal({ $ref: '#/components/schemas/ErrorBody' });
        }
      }
      const addTask = doc.paths['/add_task'].post.responses;
      expect(addTask['503'].content['application/json'].schema.allOf[1].properties.error.properties.code.enum).to.have.members([
        'no_worker',
        'queue_full',
        'shutting_down',
        'interrupted',
      ]);
      expect(addTask['202'].content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/AddTaskQueued' });
    });

    it('serves the browsable reference at /docs from local files, without a key', async () => {
      const html = await fetch(`${hub.url}/docs`);
      expect(html.status).to.equal(200);
      const text = await html.text();
      expect(text).to.include('swagger-ui');
      expect(text).not.to.match(/https?:\/\/(?!www\.w3\.org)/); // nothing fetched from elsewhere
      for (const asset of ['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css', '/docs/static/swagger-initializer.js']) {
        expect((await fetch(`${hub.url}${asset}`)).status, asset).to.equal(200);
      }
    });

    it('redirects /docs/static/index.html to the page once, with or without a query', async () => {
      for (const [path, to] of [
        ['/docs/static/index.html', '/docs/'],
        ['/docs/static/index.html?x=1', '/docs/?x=1'],
        ['/docs/static/index.html?url=%2Fdocs%2Fstatic%2Findex.html', '/docs/?url=%2Fdocs%2Fstatic%2Findex.html'],
      ]) {
        const res = await fetch(`${hub.url}${path}`, { redirect: 'manual' });
        expect(res.status, path).to.equal(302);
        expect(res.headers.get('location'), path).to.equal(to);
        // Following it ends on the page, not in a loop.
        const page = await fetch(`${hub.url}${path}`, { redirect: 'follow' });
        expect(page.status, path).to.equal(200);
        expect(await page.text(), path).to.include('swagger-ui');
      }
    });

    it('leaves the REST routes their own validation and error shapes', async () => {
      const res = await fetch(`${hub.url}/add_task`, {
        method: 'POST',
        headers: { authorization: 'Bearer docs-key', 'content-type': 'application/json' },
        body: JSON.stringify({ service_id: 'x', args: [] }),
      });
      expect(res.status).to.equal(400);
      const body = (await res.json()) as { error: { code: string } };
      expect(body.error.code).to.equal('bad_request');
    });
  });
});
