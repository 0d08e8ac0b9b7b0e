/**
 * Shows a task's result: media as they are (images shown, audio and video playable, every one
 * downloadable), the rest as pretty-printed JSON with media replaced by a short note.
 */
import { bytes, h } from './dom.js';

interface MediaValue {
  mime: string;
  name?: string;
  data: Uint8Array;
}

const isMedia = (v: unknown): v is MediaValue =>
  typeof v === 'object' && v !== null && typeof (v as MediaValue).mime === 'string' && (v as MediaValue).data instanceof Uint8Array;

const EXT: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'audio/mpeg': 'mp3',
  'video/mp4': 'mp4',
  'application/json': 'json',
};

/** Renders results; object URLs it makes are freed by `dispose()`. */
export class ResultView {
  private readonly urls: string[] = [];

  /** The view of `value`. */
  render(value: unknown): HTMLElement {
    if (isMedia(value)) return this.media(value, 'result');
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).some(isMedia)) {
      // An object with media in it: one entry per key.
      return h(
        'dl',
        { class: 'result-fields' },
        Object.entries(value).flatMap(([k, v]) => [h('dt', null, k), h('dd', null, isMedia(v) ? this.media(v, k) : json(v))]),
      );
    }
    return json(value);
  }

  /** A media value, shown when the browser can, and downloadable. */
  media(m: MediaValue, fallbackName: string): HTMLElement {
    const url = URL.createObjectURL(new Blob([m.data as Uint8Array<ArrayBuffer>], { type: m.mime }));
    this.urls.push(url);
    const name = m.name ?? `${fallbackName}.${EXT[m.mime] ?? 'bin'}`;
    const kind = m.mime.split('/')[0];
    const shown =
      kind === 'image'
        ? h('img', { src: url, alt: name })
        : kind === 'audio'
          ? h('audio', { src: url, controls: true })
          : kind === 'video'
            ? h('video', { src: url, controls: true })
            : null;
    return h(
      'figure',
      { class: 'media' },
      shown,
      h('figcaption', null, h('a', { href: url, download: name, class: 'button' }, 'Download'), ` ${name} · ${m.mime} · ${bytes(m.data.byteLength)}`),
    );
  }

  dispose(): void {
    for (const u of this.urls.splice(0)) URL.revokeObjectURL(u);
  }
}

/** Pretty-printed JSON; bytes shown as their size. */
function json(value: unknown): HTMLElement {
  const text = JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v), 2) ?? String(value);
  return h('pre', { class: 'json' }, text);
}
