/**
 * The playground: pick a service, fill the form made from its arguments, run it over the client
 * WebSocket with the SDK, follow its progress, see its result, cancel it.
 */
import { HubClient, type TaskHandle } from '@utils-hub/client';
import type { ServiceInfo } from '@utils-hub/protocol';
import type { Overview } from '../src/http/overview-shape.js';
import { getKey, onKeyChange } from './api.js';
import { bar, byId, duration, h, setBar } from './dom.js';
import { buildForm, type ArgsForm } from './form.js';
import { ResultView } from './result.js';

interface HubErrorLike {
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
}

export class Playground {
  private client: HubClient | null = null;
  private services: Array<{ id: number; name: string }> = [];
  private info: ServiceInfo | null = null;
  private form: ArgsForm | null = null;
  private task: TaskHandle | null = null;
  private maxBytes = 32 * 1024 * 1024;
  private readonly result = new ResultView();
  private readonly select = byId<HTMLSelectElement>('pg-service');
  private readonly fields = byId('pg-fields');
  private readonly run = byId<HTMLButtonElement>('pg-run');
  private readonly cancel = byId<HTMLButtonElement>('pg-cancel');
  private readonly status = byId('pg-status');
  private readonly out = byId('pg-result');
  private readonly track = bar(null);

  constructor() {
    byId('pg-progress').prepend(this.track);
    this.select.addEventListener('change', () => void this.pick(Number(this.select.value)));
    byId<HTMLFormElement>('pg-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.start();
    });
    this.cancel.addEventListener('click', () => void this.task?.cancel());
    onKeyChange(() => {
      void this.client?.close();
      this.client = null;
    });
  }

  /** The SDK's client, made on first use (after the live view proved the key, if one is needed). */
  private hub(): HubClient {
    this.client ??= new HubClient(location.origin, { key: getKey() });
    return this.client;
  }

  /** Takes the live services from the overview; keeps the selection while it is live. */
  update(o: Overview): void {
    this.maxBytes = o.max_message_bytes;
    const live = o.services.filter((s) => s.live).map((s) => ({ id: s.service_id, name: s.service_name }));
    if (JSON.stringify(live) === JSON.stringify(this.services)) return;
    this.services = live;
    const current = this.select.value;
    this.select.replaceChildren(
      h('option', { value: '', disabled: true, selected: true }, live.length ? 'Pick a service…' : 'No live service'),
      ...live.map((s) => h('option', { value: String(s.id) }, `${s.name} (#${s.id})`)),
    );
    if (live.some((s) => String(s.id) === current)) this.select.value = current;
    else if (current !== '') this.clearService('The service went offline.');
  }

  private clearService(note: string): void {
    this.info = null;
    this.form?.dispose();
    this.form = null;
    this.fields.replaceChildren(h('p', { class: 'empty' }, note));
    byId('pg-description').textContent = '';
    this.run.disabled = true;
  }

  private async pick(id: number): Promise<void> {
    this.clearService('Loading…');
    let info: ServiceInfo;
    try {
      info = await this.hub().serviceInfo(id);
    } catch (err) {
      this.clearService(`Could not read the service: ${(err as Error).message}`);
      return;
    }
    if (String(id) !== this.select.value) return; // another service was picked meanwhile
    this.info = info;
    byId('pg-description').textContent = info.service_description;
    this.form = buildForm(info.arguments, { maxBytes: this.maxBytes });
    this.fields.replaceChildren(this.form.element);
    this.run.disabled = this.task !== null;
  }

  private start(): void {
    const info = this.info;
    const form = this.form;
    if (!info || !form || this.task) return;
    const args = form.read();
    if (!args) return;
    this.result.dispose();
    this.out.replaceChildren();
    this.setStatus('submitting', 'Sending…', null);
    const t0 = performance.now();
    const task = this.hub().submit(info.service_id, args);
    this.task = task;
    this.run.disabled = true;
    this.cancel.disabled = false;
    task.on('accepted', ({ position }) => this.setStatus('queued', position > 0 ? `Queued, ${position} before it` : 'Queued', 0));
    task.on('queued', ({ position }) => this.setStatus('queued', `Waiting again (worker lost), ${position} before it`, 0));
    task.on('started', ({ attempt }) => this.setStatus('running', attempt > 1 ? `Running (attempt ${attempt})` : 'Running', task.progress ?? null));
    task.on('progress', (p) => {
      this.setStatus('running', p.message ?? 'Running', task.progress ?? null);
      if (p.data !== undefined) this.out.replaceChildren(h('p', { class: 'meta' }, 'Preview'), this.result.render(p.data));
    });
    task.on('snapshot', (s) => this.setStatus(s.status, s.message ?? s.status, s.progress));
    task
      .result()
      .then(
        (value) => {
          this.setStatus('succeeded', `Succeeded in ${duration(performance.now() - t0)}`, 1);
          this.out.replaceChildren(this.result.render(value));
        },
        (err: HubErrorLike) => {
          if (err.code === 'canceled') {
            this.setStatus('canceled', 'Canceled', task.progress ?? null);
            return;
          }
          const worker = err.details?.worker_error as HubErrorLike | undefined;
          const lines = [`${err.code ?? 'error'}: ${err.message ?? ''}`];
          if (worker) lines.push(`worker said ${worker.code ?? ''}: ${worker.message ?? ''}`);
          if (err.code === 'invalid_args' && Array.isArray(err.details?.details)) {
            lines.push(...form.showProblems(err.details.details as Array<{ argument_name?: unknown; problem?: unknown }>));
          }
          this.setStatus('failed', lines.join(' · '), task.progress ?? null);
        },
      )
      .finally(() => {
        this.task = null;
        this.cancel.disabled = true;
        this.run.disabled = this.info === null;
      });
  }

  private setStatus(state: string, text: string, progress: number | null): void {
    const box = byId('pg-progress');
    box.hidden = false;
    box.dataset.state = state;
    this.track.className = `bar ${state}`;
    setBar(this.track, progress);
    const pct = progress === null ? '' : ` · ${Math.round(progress * 100)}%`;
    this.status.textContent = `${text}${state === 'running' ? pct : ''}`;
  }
}
