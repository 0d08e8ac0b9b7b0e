/**
 * The broker may be lost (docs/protocol.md section 11): a NATS server of the test's own (never the
 * shared one, which other tests use) is SIGKILLed and restarted on the same port and store
 * directory while two hub processes carry a steady stream of tasks. While it is away `/readyz`
 * answers 503 and a task that needs the other hub is refused `unavailable`; once it is back
 * every task that was accepted ends, each once, none lost.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { run, type Proc } from '../helpers/processes.js';
import type { WsPeer } from '../helpers/ws-peer.js';
import { skipWithoutCluster, http, testCluster, until, worker, type HubProc, connectionsSeen } from '../helpers/cluster.js';

const NATS_SERVER = '/usr/sbin/nats-server';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('cluster: the NATS server killed and restarted under load', function () {
  this.timeout(180_000);
  const hubs: HubProc[] = [];
  const peers: WsPeer[] = [];
  let nats: Proc | null = null;
  let port = 0;
  let storeDir = '';

  const startNats = async (): Promise<Proc> => {
    const p = run(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir]);
    await p.waitFor(/Server is ready/, 20_000);
    return p;
  };

  before(async function () {
    await skipWithoutCluster(this);
    port = await freePort();
    storeDir = mkdtempSync(path.join(os.tmpdir(), 'uh-nats-'));
    nats = await startNats();
    const tc = await testCluster(`nats://127.0.0.1:${port}`);
    hubs.push(await tc.startHub('nr-a'));
    hubs.push(await tc.startHub('nr-b'));
  });

  after(async () => {
    await Promise.all(peers.map((p) => p.close().catch(() => undefined)));
    for (const h of hubs) h.proc.kill('SIGKILL');
    await Promise.all(hubs.map((h) => h.proc.exited));
    nats?.kill('SIGKILL');
    await nats?.exited;
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  });

  it('answers /readyz 503 while it is away, and ends every accepted task once it is back', async () => {
    const [a, b] = hubs;
    // The only worker is on B: every task submitted on A crosses hubs through JetStream.
    const w = await worker(b, 'cl_nats_restart', 4);
    peers.push(w);
    const ran = new Map<string, number>();
    let answering = true;
    const answers = (async () => {
      while (answering) {
        const m = await w.next((x) => x.type === 'task', 500).catch(() => null);
        if (!m) continue;
        ran.set(m.task_id, (ran.get(m.task_id) ?? 0) + 1);
        setTimeout(() => w.send({ type: 'result', task_id: m.task_id, result: { y: m.args.x } }), 20);
      }
    })();
    const sid = w.welcome.service_id;
    await connectionsSeen(a, sid, 1, "B's worker seen on A");
    const accepted: string[] = [];
    const refused: number[] = [];
    let load = true;
    let x = 0;
    const submitting = (async () => {
      while (load) {
        const r = await http(a, 'POST', '/add_task?wait=false', { service_id: sid, args: { x: ++x } }).catch(() => ({ status: 0, body: null }));
        if (r.status === 202) accepted.push(r.body.task_id);
        else refused.push(r.status);
        await new Promise((res) => setTimeout(res, 30));
      }
    })();
    await until(
      () => accepted.length,
      (n) => n >= 20,
      15_000,
      'tasks accepted before the kill',
    );
    nats!.kill('SIGKILL');
    await nats!.exited;
    const down = await until(
      () => http(a, 'GET', '/readyz'),
      (r) => r.status === 503,
      10_000,
      '/readyz 503 on A',
    );
    expect(down.body.reason).to.match(/broker/);
    expect((await http(b, 'GET', '/readyz')).status).to.equal(503);
    const refusedBefore = refused.length;
    await until(
      () => refused.length,
      (n) => n > refusedBefore,
      5000,
      'a task refused while NATS is away',
    );
    expect(refused.filter((s) => s !== 503)).to.deep.equal([]);
    nats = await startNats();
    await until(
      () => Promise.all(hubs.map((h) => http(h, 'GET', '/readyz'))),
      (rs) => rs.every((r) => r.status === 200),
      20_000,
      '/readyz 200 on both hubs',
    );
    const acceptedBefore = accepted.length;
    await until(
      () => accepted.length,
      (n) => n >= acceptedBefore + 10,
      15_000,
      'tasks accepted after the restart',
    );
    load = false;
    await submitting;
    // Every accepted task ends, and succeeds, readable on both hubs.
    const ends = async () => {
      const out: Record<string, number> = {};
      for (const id of accepted) {
        const r = await http(b, 'GET', `/tasks/${id}`);
        const s = r.status === 200 ? `${r.body.status}${r.body.error ? ` ${r.body.error.code}` : ''}` : `http ${r.status}`;
        out[s] = (out[s] ?? 0) + 1;
      }
      return out;
    };
    const final = await until(ends, (o) => o.succeeded === accepted.length, 30_000, 'every accepted task succeeded');
    answering = false;
    await answers;
    expect(final).to.deep.equal({ succeeded: accepted.length });
    const last = await http(a, 'GET', `/tasks/${accepted[accepted.length - 1]}`);
    expect(last.body.status).to.equal('succeeded');
    // None ran twice: a message JetStream delivers again after its task ended (its ack lost with
    // the server, or the server's own unsynced state lost with SIGKILL) is acked, not run.
    expect([...ran.values()].filter((n) => n > 1)).to.deep.equal([]);
    console.log(`      (${accepted.length} tasks accepted, ${refused.length} refused 503 while NATS was away)`);
  });
});
