/**
 * What a crash keeps (docs/protocol.md, "What an acknowledgement means"): a real hub process,
 * a real worker process at concurrency 32 and 3 clients bursting tasks; the hub is killed with
 * SIGKILL mid-burst, restarted on the same database, and every task a client was told about is
 * read back. None may read `task_not_found`; every end a client received must read the same; a
 * task whose end no client saw reads `failed` `interrupted`, or the end it had reached. With
 * webhooks, every accepted task has exactly one `completed` delivery after the restart.
 *
 * `HUB_TEST_CRASH_COMMIT=async` runs the same test against `HUB_COMMIT=async` (write-behind),
 * which is expected to fail it: that mode may lose the last few milliseconds of rows.
 */
import { expect } from 'chai';
import { WebSocket } from 'ws';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { dbBackends } from '../helpers/db.js';
import { openDb } from '../../server/src/db/index.js';
import { startExample, startHubProcess, type Proc } from '../helpers/processes.js';

const COMMIT = process.env.HUB_TEST_CRASH_COMMIT ?? 'stored';
const CLIENTS = 3;
/** Tasks each client keeps unanswered or unfinished at once. */
const WINDOW = 150;
/** Ends received (all clients together) after which the hub is killed: the burst is in full swing. */
const ENDS_BEFORE_KILL = 1500;

type End = { type: 'result'; result: unknown } | { type: 'failed'; code: string } | { type: 'canceled' };

interface Seen {
  accepted: Set<string>;
  ends: Map<string, End>;
  /** Messages that break the order rules (an event before `accepted`, a seq out of order). */
  disorder: string[];
}

/**
 * A client that keeps `WINDOW` tasks going until its socket closes, recording what it was told;
 * `extra(ref)` adds fields to each add_task (an idempotency key, a webhook).
 */
function burstClient(url: string, serviceId: number, name: string, seen: Seen, onEnd: () => void, extra: (ref: string) => object = () => ({})): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/client`, { perMessageDeflate: false });
    let sent = 0;
    let open = 0; // requests not answered, plus tasks not ended
    const lastSeq = new Map<string, number>();
    const fill = () => {
      while (ws.readyState === WebSocket.OPEN && open < WINDOW) {
        const ref = `${name}-${sent++}`;
        open++;
        ws.send(JSON.stringify({ type: 'add_task', ref, service_id: serviceId, args: { value: ref }, ...extra(ref) }));
      }
    };
    ws.on('open', fill);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Record<string, any>;
      if (m.type === 'accepted') {
        seen.accepted.add(m.task_id);
        lastSeq.set(m.task_id, 0);
        return;
      }
      if (m.type === 'rejected') {
        open--;
        fill();
        return;
      }
      if (typeof m.task_id !== 'string' || typeof m.seq !== 'number') return;
      const prev = lastSeq.get(m.task_id);
      if (prev === undefined) seen.disorder.push(`${m.type} of ${m.task_id} before its accepted`);
      else if (m.seq <= prev) seen.disorder.push(`${m.type} of ${m.task_id} with seq ${m.seq} after seq ${prev}`);
      lastSeq.set(m.task_id, m.seq);
      if (m.type === 'result') seen.ends.set(m.task_id, { type: 'result', result: m.result });
      else if (m.type === 'failed') seen.ends.set(m.task_id, { type: 'failed', code: m.error?.code });
      else if (m.type === 'canceled') seen.ends.set(m.task_id, { type: 'canceled' });
      else return;
      open--;
      onEnd();
      fill();
    });
    ws.on('error', () => {});
    ws.on('close', () => resolve());
  });
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

/** Reads every id back with a few requests at once. */
async function readBack(url: string, ids: string[]): Promise<Map<string, { status: number; body: any }>> {
  const out = new Map<string, { status: number; body: any }>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ids.length) {
        const id = ids[next++];
        out.set(id, await getJson(`${url}/tasks/${id}`));
      }
    }),
  );
  return out;
}

async function waitFor<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const backends = await dbBackends();

for (const backend of backends) {
  backend.describe(`a hub killed mid-burst keeps what clients were told (HUB_COMMIT=${COMMIT}, ${backend.name})`, function () {
    this.timeout(120_000);
    const procs: Proc[] = [];
    afterEach(async () => {
      for (const p of procs.splice(0)) {
        p.kill('SIGKILL');
        await p.exited;
      }
    });

    /** A hub process on `db` and an `echo` example worker of 32 slots on it, both stopped after the test. */
    async function hubWithEcho(db: string, env: Record<string, string>): Promise<{ hub: Proc & { url: string }; serviceId: number }> {
      const hub = await startHubProcess(db, env);
      procs.push(hub);
      procs.push(await startExample('echo', ['--hub', `${hub.url.replace(/^http/, 'ws')}/worker`, '--concurrency', '32']));
      const serviceId = await waitFor('echo service', async () => {
        const list = (await getJson(`${hub.url}/services_list`)).body as Array<{ service_id: number; service_name: string }>;
        return list.find((s) => s.service_name === 'echo')?.service_id;
      });
      return { hub, serviceId };
    }

    it('reads every accepted task back after SIGKILL and a restart, each end as a client received it', async () => {
      const db = await backend.freshDatabase();
      const env = { HUB_COMMIT: COMMIT };
      const { hub, serviceId } = await hubWithEcho(db, env);

      const seen: Seen = { accepted: new Set(), ends: new Map(), disorder: [] };
      const kill = () => {
        if (seen.ends.size === ENDS_BEFORE_KILL) hub.kill('SIGKILL');
      };
      const clients = Array.from({ length: CLIENTS }, (_, i) => burstClient(hub.url, serviceId, `c${i}`, seen, kill));
      expect(await hub.exited).to.equal('SIGKILL');
      await Promise.all(clients);

      const again = await startHubProcess(db, env);
      procs.push(again);
      const ids = [...seen.accepted];
      const read = await readBack(again.url, ids);

      const unknown: string[] = [];
      const changed: string[] = [];
      const unfinished: string[] = [];
      let interrupted = 0;
      let endedUnseen = 0;
      for (const id of ids) {
        const { status, body } = read.get(id)!;
        if (status === 404) {
          unknown.push(id);
          continue;
        }
        const end = seen.ends.get(id);
        if (end?.type === 'result') {
          if (body.status !== 'succeeded' || JSON.stringify(body.result) !== JSON.stringify(end.result))
            changed.push(`${id}: result, reads ${body.status} ${JSON.stringify(body.error ?? body.result)}`);
        } else if (end?.type === 'failed') {
          if (body.status !== 'failed' || body.error?.code !== end.code) changed.push(`${id}: failed ${end.code}, reads ${body.status} ${body.error?.code}`);
        } else if (end?.type === 'canceled') {
          if (body.status !== 'canceled') changed.push(`${id}: canceled, reads ${body.status}`);
        } else if (body.status === 'failed' && body.error?.code === 'interrupted') interrupted++;
        else if (['succeeded', 'failed', 'canceled'].includes(body.status))
          endedUnseen++; // ended, its end not sent yet
        else unfinished.push(`${id}: ${body.status}`);
      }
      console.log(
        `      ${backend.name}, HUB_COMMIT=${COMMIT}: ${ids.length} accepted, ${seen.ends.size} ends received; after the restart ` +
          `${unknown.length} unknown, ${changed.length} ends changed, ${interrupted} interrupted, ${endedUnseen} ended unseen, ${unfinished.length} unfinished`,
      );
      expect(ids.length, 'tasks accepted before the kill').to.be.greaterThan(500);
      expect(seen.ends.size, 'ends received before the kill').to.be.greaterThan(100);
      expect(seen.disorder.slice(0, 5), 'events out of order').to.deep.equal([]);
      expect(unknown.slice(0, 5), 'accepted tasks that read task_not_found').to.deep.equal([]);
      expect(changed.slice(0, 5), 'ends that read otherwise than received').to.deep.equal([]);
      expect(unfinished.slice(0, 5), 'tasks still unfinished after the restart').to.deep.equal([]);
    });

    it('keeps the key of every accepted keyed task and the webhook delivery of every end a client received, after SIGKILL', async function () {
      if (COMMIT !== 'stored') this.skip(); // async mode may lose the last rows, deliveries with them
      const receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200).end());
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
      try {
        const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
        const dbUrl = await backend.freshDatabase();
        const env = { HUB_COMMIT: COMMIT, HUB_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64')}`, HUB_WEBHOOK_ALLOW_PRIVATE: '1' };
        const { hub, serviceId } = await hubWithEcho(dbUrl, env);
        const seen: Seen = { accepted: new Set(), ends: new Map(), disorder: [] };
        const kill = () => {
          if (seen.ends.size === ENDS_BEFORE_KILL / 3) hub.kill('SIGKILL');
        };
        const extra = (ref: string) => ({ idempotency_key: `key-${ref}`, webhook: hook });
        const clients = Array.from({ length: CLIENTS }, (_, i) => burstClient(hub.url, serviceId, `k${i}`, seen, kill, extra));
        expect(await hub.exited).to.equal('SIGKILL');
        await Promise.all(clients);

        const db = openDb(dbUrl, { log: () => {} });
        try {
          const keys = new Set(((await db('idempotency_keys').select('task_id')) as { task_id: string }[]).map((r) => r.task_id));
          const completed = new Set(
            ((await db('webhook_deliveries').where({ event: 'completed' }).select('task_id')) as { task_id: string }[]).map((r) => r.task_id),
          );
          const ended = [...seen.ends.keys()];
          const noKey = [...seen.accepted].filter((id) => !keys.has(id));
          const noDelivery = ended.filter((id) => !completed.has(id));
          console.log(
            `      ${backend.name}: ${seen.accepted.size} keyed tasks accepted, ${ended.length} ends received, ${completed.size} completed deliveries stored`,
          );
          expect(ended.length, 'ends received before the kill').to.be.greaterThan(100);
          expect(noKey.slice(0, 5), 'accepted tasks without their key').to.deep.equal([]);
          expect(noDelivery.slice(0, 5), 'ends received without their completed delivery').to.deep.equal([]);

          // After a restart every accepted task has ended (those left unfinished as interrupted),
          // each with exactly one completed delivery.
          procs.push(await startHubProcess(dbUrl, env));
          const counts = new Map<string, number>();
          for (const r of (await db('webhook_deliveries').where({ event: 'completed' }).select('task_id')) as { task_id: string }[])
            counts.set(r.task_id, (counts.get(r.task_id) ?? 0) + 1);
          const notOnce = [...seen.accepted].filter((id) => counts.get(id) !== 1).map((id) => `${id}: ${counts.get(id) ?? 0}`);
          console.log(`      ${backend.name}: after the restart, ${counts.size} tasks with a completed delivery`);
          expect(notOnce.slice(0, 5), 'accepted tasks without exactly one completed delivery after the restart').to.deep.equal([]);
        } finally {
          await db.destroy();
        }
      } finally {
        await new Promise<void>((r) => receiver.close(() => r()));
      }
    });
  });
}
