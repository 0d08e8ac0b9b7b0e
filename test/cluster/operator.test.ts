/**
 * The operator views of a cluster with real hub processes (docs/cluster.md): `/api/overview` on
 * any hub lists every hub and which hub holds each worker connection, the page shows them, and
 * `/metrics` and the logs name the hub.
 */
import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import { launch } from '../operator/browser.js';
import { sample } from '../helpers/metrics.js';
import type { WsPeer } from '../helpers/ws-peer.js';
import { skipWithoutCluster, http, testCluster, until, worker, type HubProc } from '../helpers/cluster.js';

describe('cluster: operator views', function () {
  this.timeout(120_000);
  const hubs: HubProc[] = [];
  const peers: WsPeer[] = [];
  let cluster = '';

  before(async function () {
    await skipWithoutCluster(this);
    const tc = await testCluster();
    cluster = tc.name;
    hubs.push(await tc.startHub('op-a', { HUB_LOG_LEVEL: 'info' }));
    hubs.push(await tc.startHub('op-b'));
    peers.push(await worker(hubs[0], 'cl_op', 2), await worker(hubs[1], 'cl_op', 3));
  });

  after(async () => {
    await Promise.all(peers.map((p) => p.close().catch(() => undefined)));
    for (const h of hubs) h.proc.kill('SIGKILL');
    await Promise.all(hubs.map((h) => h.proc.exited));
  });

  it('lists every hub and the hub of each connection in /api/overview, on any hub', async () => {
    for (const [self, other] of [
      [hubs[0], hubs[1]],
      [hubs[1], hubs[0]],
    ]) {
      const o = await until(
        () => http(self, 'GET', '/api/overview'),
        (r) => r.body.services?.find((s: { service_name: string }) => s.service_name === 'cl_op')?.connections.length === 2,
        8000,
        `both connections on ${self.id}'s overview`,
      );
      expect(o.body).to.include({ hub_id: self.id, cluster });
      expect(o.body.hubs.map((h: { hub_id: string; self: boolean; answered: boolean }) => [h.hub_id, h.self, h.answered])).to.deep.equal([
        [self.id, true, true],
        [other.id, false, true],
      ]);
      expect(o.body.hubs.map((h: { worker_connections: number }) => h.worker_connections)).to.deep.equal([1, 1]);
      const conns = o.body.services.find((s: { service_name: string }) => s.service_name === 'cl_op').connections;
      expect(conns.map((c: { hub_id: string; concurrency: number }) => [c.hub_id, c.concurrency]).sort()).to.deep.equal([
        ['op-a', 2],
        ['op-b', 3],
      ]);
    }
  });

  it('names the hub in /metrics (utils_hub_info) and in every log line', async () => {
    for (const h of hubs) {
      const text = await (await fetch(`${h.url}/metrics`)).text();
      expect(sample(text, 'utils_hub_info', { hub: h.id, cluster })).to.equal(1);
    }
    // op-a logs at info: its start lines are JSON lines, each with its hub_id.
    const lines = hubs[0].proc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).to.be.greaterThan(0);
    for (const l of lines) expect(l.hub_id, JSON.stringify(l)).to.equal('op-a');
  });

  it("shows the cluster's hubs and each connection's hub on the page", async () => {
    let browser: Browser | undefined;
    try {
      browser = await launch();
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${hubs[1].url}/`);
      await page.locator('#hubs [data-hub="op-a"]').waitFor();
      expect(await page.locator('#hubs .hub').count()).to.equal(2);
      expect(await page.locator('#hubs [data-hub="op-b"]').textContent()).to.contain('this hub');
      expect(await page.locator('#cluster-name').textContent()).to.equal(`cluster ${cluster}`);
      const card = page.locator('#services [data-service="cl_op"]');
      await card.locator('.conn .hub-of[data-hub="op-a"]').waitFor();
      expect(await card.locator('.conn .hub-of').allTextContents()).to.have.members(['op-a', 'op-b']);
      expect(errors).to.deep.equal([]);
    } finally {
      await browser?.close();
    }
  });
});
