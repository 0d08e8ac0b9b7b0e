/**
 * A tiny element builder: `h('div', { class: 'x', onclick: fn }, 'text', child)`. Enough for a
 * page of a few views; no framework, no virtual DOM.
 */
export type Child = Node | string | number | null | undefined | false;
type Props = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Array<Child | Child[]>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value as EventListener);
    else if (key === 'class') el.className = String(value);
    else if (key in el && !key.includes('-')) (el as unknown as Props)[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Array<Child | Child[]>): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else if (c !== null && c !== undefined && c !== false) el.appendChild(document.createTextNode(String(c)));
  }
}

/** The element with this id; throws when the page lacks it (a build mismatch). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

/** A progress bar: a track and its fill, whose width follows `fraction` (0 to 1, or null: unknown). */
export function bar(fraction: number | null, kind = ''): HTMLDivElement {
  const fill = h('div', { class: 'fill' });
  const track = h('div', { class: `bar ${kind}`.trim(), role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, fill);
  setBar(track, fraction);
  return track;
}

/** Moves a bar made by {@link bar}. */
export function setBar(track: HTMLElement, fraction: number | null): void {
  const fill = track.firstElementChild as HTMLElement;
  const pct = fraction === null ? null : Math.round(Math.max(0, Math.min(1, fraction)) * 1000) / 10;
  track.classList.toggle('unknown', pct === null);
  fill.style.width = pct === null ? '' : `${pct}%`;
  track.dataset.progress = pct === null ? '' : String(pct);
  if (pct === null) track.removeAttribute('aria-valuenow');
  else track.setAttribute('aria-valuenow', String(pct));
}

/** `1.2 s`, `3 min 4 s`, `2 h 5 min`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** `512 B`, `3.4 KB`, `1.2 MB`. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
