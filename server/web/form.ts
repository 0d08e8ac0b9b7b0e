/**
 * A form generated from a service's arguments (docs/protocol.md section 3): a number input with its
 * min and max for `int` and `float`, a select for `choices`, a checkbox for `bool`, a text area
 * for `json`, and a file picker with a preview for media; defaults filled in. `read()` gives the
 * args keyed by argument_name, or the problems to show next to the fields.
 */
import type { Argument } from '@utils-hub/protocol';
import { media, type MediaInput } from '@utils-hub/client';
import { bytes, h } from './dom.js';

const MEDIA = new Set(['image', 'audio', 'video', 'file']);

/** One field of the form. */
interface Field {
  arg: Argument;
  row: HTMLElement;
  error: HTMLElement;
  /** The value to send, `undefined` to leave the argument out, or a problem. */
  read(): { value?: unknown; problem?: string };
}

export interface ArgsForm {
  element: HTMLElement;
  /** The args, or false after marking the fields with problems. */
  read(): Record<string, unknown> | false;
  /** Marks fields with the hub's `invalid_args` details; returns the problems of no field. */
  showProblems(details: Array<{ argument_name?: unknown; problem?: unknown }>): string[];
  /** Frees the previews' object URLs. */
  dispose(): void;
}

const isRequired = (a: Argument) => a.default === undefined && a.required !== false;
const label = (a: Argument) => a.argument_name.replace(/_/g, ' ');

export function buildForm(args: Argument[], limits: { maxBytes: number }): ArgsForm {
  const urls: string[] = [];
  const fields = args.map((a) => field(a, urls, limits.maxBytes));
  const element = h(
    'div',
    { class: 'fields' },
    fields.map((f) => f.row),
  );
  if (args.length === 0) element.append(h('p', { class: 'empty' }, 'This service takes no argument.'));
  return {
    element,
    read() {
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const f of fields) {
        const { value, problem } = f.read();
        f.error.textContent = problem ?? '';
        f.row.classList.toggle('invalid', problem !== undefined);
        if (problem !== undefined) ok = false;
        else if (value !== undefined) out[f.arg.argument_name] = value;
      }
      return ok && out;
    },
    showProblems(details) {
      const left: string[] = [];
      for (const d of details) {
        const f = fields.find((x) => x.arg.argument_name === d.argument_name);
        if (f) {
          f.error.textContent = String(d.problem ?? 'refused');
          f.row.classList.add('invalid');
        } else left.push(`${String(d.argument_name ?? '?')}: ${String(d.problem ?? '')}`);
      }
      return left;
    },
    dispose() {
      for (const u of urls.splice(0)) URL.revokeObjectURL(u);
    },
  };
}

function field(a: Argument, urls: string[], maxBytes: number): Field {
  const id = `arg-${a.argument_name}`;
  const required = isRequired(a);
  const error = h('div', { class: 'error', 'aria-live': 'polite' });
  const help = a.argument_description || a.prompt;
  const extra: Node[] = [];
  let read: Field['read'];
  let input: HTMLElement;

  const empty = (): { value?: unknown; problem?: string } => (required ? { problem: 'required' } : {});

  if (a.choices) {
    const choices = a.choices;
    const select = h(
      'select',
      { id, name: a.argument_name },
      required || a.default !== undefined ? null : h('option', { value: '' }, '—'),
      choices.map((c, i) =>
        h(
          'option',
          { value: String(i), selected: a.default !== undefined && JSON.stringify(c) === JSON.stringify(a.default) },
          typeof c === 'string' ? c : JSON.stringify(c),
        ),
      ),
    );
    input = select;
    read = () => (select.value === '' ? empty() : { value: choices[Number(select.value)] });
  } else if (a.type === 'bool') {
    const box = h('input', { id, name: a.argument_name, type: 'checkbox', checked: a.default === true });
    input = box;
    read = () => ({ value: box.checked });
  } else if (a.type === 'int' || a.type === 'float') {
    const num = h('input', {
      id,
      name: a.argument_name,
      type: 'number',
      inputmode: a.type === 'int' ? 'numeric' : 'decimal',
      step: a.type === 'int' ? '1' : 'any',
      min: a.min,
      max: a.max,
      required,
      value: typeof a.default === 'number' ? String(a.default) : '',
    });
    input = num;
    read = () => {
      if (num.value.trim() === '') return num.validity.badInput ? { problem: 'not a number' } : empty();
      const v = Number(num.value);
      if (!Number.isFinite(v)) return { problem: 'not a number' };
      if (a.type === 'int' && !Number.isSafeInteger(v)) return { problem: 'a whole number, please' };
      if (a.min !== undefined && v < a.min) return { problem: `at least ${a.min}` };
      if (a.max !== undefined && v > a.max) return { problem: `at most ${a.max}` };
      return { value: v };
    };
  } else if (a.type === 'json') {
    const area = h('textarea', {
      id,
      name: a.argument_name,
      rows: 4,
      spellcheck: false,
      value: a.default === undefined ? '' : JSON.stringify(a.default, null, 2),
    });
    input = area;
    read = () => {
      if (area.value.trim() === '') return empty();
      try {
        return { value: JSON.parse(area.value) as unknown };
      } catch (err) {
        return { problem: `not JSON: ${(err as Error).message}` };
      }
    };
  } else if (MEDIA.has(a.type)) {
    const accept = a.mime?.join(',') ?? (a.type === 'file' ? undefined : `${a.type}/*`);
    const preview = h('div', { class: 'preview' });
    const file = h('input', { id, name: a.argument_name, type: 'file', accept, required });
    file.addEventListener('change', () => {
      preview.replaceChildren();
      const f = file.files?.[0];
      if (!f) return;
      const url = URL.createObjectURL(f);
      urls.push(url);
      const kind = f.type.split('/')[0];
      if (kind === 'image') preview.append(h('img', { src: url, alt: `preview of ${f.name}` }));
      else if (kind === 'audio') preview.append(h('audio', { src: url, controls: true }));
      else if (kind === 'video') preview.append(h('video', { src: url, controls: true, muted: true }));
      preview.append(h('span', { class: 'meta' }, `${f.name} · ${f.type || 'unknown type'} · ${bytes(f.size)}`));
    });
    extra.push(preview);
    input = file;
    read = () => {
      const f = file.files?.[0];
      if (!f) return empty();
      const limit = Math.min(a.max_bytes ?? Infinity, maxBytes);
      if (f.size > limit) return { problem: `over ${bytes(limit)}` };
      const m: MediaInput = media(f, f.type || 'application/octet-stream', f.name);
      return { value: m };
    };
  } else {
    const text = h('input', {
      id,
      name: a.argument_name,
      type: 'text',
      minLength: a.min,
      maxLength: a.max,
      value: typeof a.default === 'string' ? a.default : '',
    });
    input = text;
    read = () => (text.value === '' && !required ? {} : { value: text.value });
  }

  const row = h(
    'div',
    { class: `field type-${a.type}${a.type === 'bool' && !a.choices ? ' check' : ''}` },
    h('label', { htmlFor: id }, label(a), required ? h('span', { class: 'req', title: 'required' }, ' *') : null, h('small', null, ` ${a.type}`)),
    input,
    extra,
    help ? h('div', { class: 'help' }, help) : null,
    error,
  );
  return { arg: a, row, error, read };
}
