/**
 * The live view: polls `/api/overview` once a second (every 5 s while the tab is hidden) and
 * shows services with their connections and queues, and recent tasks with their progress and
 * their end. Task rows are kept by id and updated in place, so their bars move smoothly.
 */
import type { Overview, OverviewHub, OverviewService, OverviewTask } from '../src/http/overview-shape.js';
import { ApiError, getJson } from './api.js';
import { bar, byId, duration, h, setBar } from './dom.js';

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;

/** Starts polling; `onOverview` gets each fresh overview (the playground takes its services from it). */
export function startLive(onOverview: (o: Overview) => void): { refresh(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    clearTimeout(timer);
    try {
      const o = await getJson<Overview>('/api/overview');
      render(o);
      onOverview(o);
      hubState(o.shutting_down ? 'stopping' : 'live', o.shutting_down ? 'stopping' : 'live');
    } catch (err) {
      if (err instanceof ApiError && err.code === 'unauthorized') hubState('needs a client key', 'down');
      else hubState('unreachable', 'down');
    }
    timer = setTimeout(tick, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  };
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void tick();
  });
  void tick();
  return { refresh: () => void tick() };
}

function hubState(text: string, kind: string): void {
  const el = byId('hub-state');
  el.textContent = text;
  el.className = `pill ${kind}`;
}

function render(o: Overview): void {
  byId('summary').replaceChildren(
    stat(o.services.filter((s) => s.live).length, 'services live'),
    stat(
      o.services.reduce((n, s) => n + s.connections.length, 0),
      'workers',
    ),
    stat(o.clients, 'clients'),
    stat(o.running, 'running'),
    stat(o.queued, 'queued'),
  );
  renderHubs(o);
  const services = [...o.services].sort((a, b) => Number(b.live) - Number(a.live) || a.service_id - b.service_id);
  byId('services').replaceChildren(
    ...(services.length
      ? services.map(serviceCard)
      : [h('p', { class: 'empty' }, 'No service yet: start a worker (npm run example -- image --hub ws://…/worker).')]),
  );
  renderTasks(o.tasks, Date.parse(o.now));
}

/** The cluster's hubs; shown only in cluster mode (a hub alone has nothing to compare). */
function renderHubs(o: Overview): void {
  byId('hubs-section').hidden = o.cluster === null;
  if (o.cluster === null) return;
  byId('cluster-name').textContent = `cluster ${o.cluster}`;
  byId('hubs').replaceChildren(...o.hubs.map(hubItem));
}

function hubItem(hub: OverviewHub): HTMLElement {
  return h(
    'li',
    { class: `hub${hub.answered ? '' : ' offline'}`, 'data-hub': hub.hub_id },
    h('b', null, hub.hub_id),
    hub.self ? h('span', { class: 'badge live', title: 'this page comes from this hub' }, 'this hub') : null,
    hub.answered ? null : h('span', { class: 'badge off' }, 'not answering'),
    h('span', { class: 'meta' }, `${hub.worker_connections} workers · ${hub.clients} clients · ${hub.running} running · ${hub.queued} queued`),
    hub.url ? h('span', { class: 'remote', title: hub.url }, hub.url) : null,
  );
}

const stat = (n: number, label: string) => h('div', { class: 'stat' }, h('b', null, n), h('span', null, label));

function serviceCard(s: OverviewService): HTMLElement {
  const inFlight = s.connections.reduce((n, c) => n + c.in_flight, 0);
  const slots = s.connections.reduce((n, c) => n + c.concurrency, 0);
  return h(
    'article',
    { class: `service${s.live ? '' : ' offline'}`, 'data-service': s.service_name },
    h(
      'header',
      null,
      h('h4', null, s.service_name, h('small', null, ` #${s.service_id}`)),
      h('span', { class: `badge ${s.live ? 'live' : 'off'}` }, s.live ? 'live' : 'offline'),
      h('span', { class: 'meta' }, `${inFlight}/${slots} in flight · ${s.queued} queued`),
    ),
    s.service_description ? h('p', { class: 'desc' }, s.service_description) : null,
    s.connections.length
      ? h(
          'ul',
          { class: 'conns' },
          s.connections.map((c) =>
            h(
              'li',
              { class: 'conn', 'data-connection': c.connection_id },
              h('span', { class: 'inst', title: `connection ${c.connection_id}` }, c.instance ?? c.connection_id),
              h('span', { class: 'hub-of', 'data-hub': c.hub_id, title: `held by hub ${c.hub_id}` }, c.hub_id),
              h(
                'span',
                { class: `kind ${c.dialed ? 'dialed' : 'dialed-in'}`, title: c.dialed ? 'the hub dialed this worker' : 'this worker dialed the hub' },
                c.dialed ? 'dialed by the hub' : 'dialed in',
              ),
              h('span', { class: 'load' }, bar(c.concurrency ? c.in_flight / c.concurrency : 0, 'small'), `${c.in_flight}/${c.concurrency}`),
              h('span', { class: 'remote', title: c.remote }, c.remote),
              c.draining ? h('span', { class: 'badge off' }, 'draining') : null,
            ),
          ),
        )
      : null,
  );
}

interface Row {
  li: HTMLLIElement;
  badge: HTMLElement;
  when: HTMLElement;
  track: HTMLElement;
  msg: HTMLElement;
}
const rows = new Map<string, Row>();

function renderTasks(tasks: OverviewTask[], now: number): void {
  const list = byId('tasks');
  const seen = new Set<string>();
  const ordered: HTMLElement[] = [];
  for (const t of tasks) {
    seen.add(t.task_id);
    let row = rows.get(t.task_id);
    if (!row) {
      row = newRow(t);
      rows.set(t.task_id, row);
    }
    updateRow(row, t, now);
    ordered.push(row.li);
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }
  // Moves only what is out of place, so that rows keep their animations.
  ordered.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  byId('tasks-empty').hidden = tasks.length > 0;
}

function newRow(t: OverviewTask): Row {
  const badge = h('span', { class: 'badge' });
  const when = h('span', { class: 'when' });
  const track = bar(null);
  const msg = h('div', { class: 'msg' });
  const li = h(
    'li',
    { class: 'task', 'data-task': t.task_id },
    h('div', { class: 'head' }, badge, h('b', null, t.service_name), h('code', { title: t.task_id }, t.task_id.slice(0, 8)), when),
    track,
    msg,
  );
  return { li, badge, when, track, msg };
}

function updateRow(row: Row, t: OverviewTask, now: number): void {
  row.li.dataset.status = t.status;
  row.badge.className = `badge ${t.status}`;
  row.badge.textContent = t.status === 'failed' && t.error ? `failed · ${t.error.code}` : t.status;
  const start = Date.parse(t.started_at ?? t.created_at);
  const end = t.finished_at ? Date.parse(t.finished_at) : now;
  row.when.textContent = t.status === 'queued' ? `waiting ${duration(now - Date.parse(t.created_at))}` : duration(end - start);
  const fraction = t.status === 'succeeded' ? 1 : t.progress;
  setBar(row.track, t.status === 'queued' ? 0 : fraction);
  row.track.className = `bar ${t.status}${fraction === null && t.status === 'running' ? ' unknown' : ''}`;
  const text = t.error ? `${t.error.code}: ${t.error.message}` : (t.message ?? '');
  if (row.msg.textContent !== text) row.msg.textContent = text;
  row.msg.title = t.connection_id ? `on connection ${t.connection_id}` : '';
}
