/**
 * docs/protocol.md cannot drift from the schemas: every fenced `json` block of the page is
 * preceded by a marker naming what it is, `<!-- example: NAME -->` (must validate) or
 * `<!-- counter-example: NAME -->` (must be refused), where NAME is a validator of
 * protocol/src/validators.ts (`serviceDescription`, `taskView`, ...) or a message as
 * `direction.type` (`workerToHub.hello`, `hubToClient.result`, ...). Service descriptions, also
 * the `me` of a hello, go through checkServiceDescription too. Every message type of every
 * direction has at least one example. A field table preceded by `<!-- fields: NAME -->` lists
 * every field of that schema (but a message's `type`), and says "yes" in its "req." column
 * exactly for the required ones.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkServiceDescription, validate, type Validator } from '@utils-hub/protocol';

const DOC = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const DIRECTIONS = ['workerToHub', 'hubToWorker', 'clientToHub', 'hubToClient'] as const;

interface Example {
  line: number;
  kind: 'example' | 'counter-example';
  name: string;
  value: unknown;
}

/** Every ```json block with its marker (the nearest non-blank line above it); throws on a block without one. */
function examples(text: string): Example[] {
  const lines = text.split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```json') continue;
    let j = i - 1;
    while (j >= 0 && lines[j].trim() === '') j--;
    const m = /^<!--\s*(example|counter-example):\s*([\w.]+)\s*-->$/.exec(lines[j]?.trim() ?? '');
    if (!m) throw new Error(`docs/protocol.md:${i + 1}: a json block without an <!-- example: NAME --> marker`);
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`docs/protocol.md:${i + 1}: an unclosed json block`);
    let value: unknown;
    try {
      value = JSON.parse(lines.slice(i + 1, end).join('\n'));
    } catch (err) {
      throw new Error(`docs/protocol.md:${i + 1}: not JSON: ${(err as Error).message}`);
    }
    out.push({ line: i + 1, kind: m[1] as Example['kind'], name: m[2], value });
    i = end;
  }
  return out;
}

function validatorOf(name: string): Validator<unknown> {
  const [a, b] = name.split('.');
  const table = validate as unknown as Record<string, Validator<unknown> | Record<string, Validator<unknown>>>;
  const v = b === undefined ? table[a] : (table[a] as Record<string, Validator<unknown>> | undefined)?.[b];
  if (typeof v !== 'function') throw new Error(`no validator named ${name}`);
  return v;
}

interface FieldTable {
  line: number;
  name: string;
  /** Field name to "required" as the table says it. */
  rows: Map<string, boolean>;
}

/** Every table marked `<!-- fields: NAME -->`: its first column's names and its req. column. */
function fieldTables(text: string): FieldTable[] {
  const lines = text.split('\n');
  const out: FieldTable[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!--\s*fields:\s*([\w.]+)\s*-->$/.exec(lines[i].trim());
    if (!m) continue;
    const rows = new Map<string, boolean>();
    for (let j = i + 3; j < lines.length && lines[j].startsWith('|'); j++) {
      const [first, req] = lines[j].split('|').slice(1, 3);
      const required = /\byes\b/.test(req);
      for (const [, name] of first.matchAll(/`([\w$]+)`/g)) rows.set(name, required);
    }
    out.push({ line: i + 1, name: m[1], rows });
  }
  return out;
}

/** The problem of an example, or null when it is valid. */
function problem(ex: Example): string | null {
  const v = validatorOf(ex.name);
  if (!v(ex.value)) return v.problem();
  const me = ex.name === 'serviceDescription' ? ex.value : ex.name === 'workerToHub.hello' ? (ex.value as { me: unknown }).me : undefined;
  if (me !== undefined) {
    try {
      checkServiceDescription(me);
    } catch (err) {
      return (err as Error).message;
    }
  }
  return null;
}

describe('docs/protocol.md examples', () => {
  const all = examples(readFileSync(DOC, 'utf8'));

  it('marks every json block and has examples', () => {
    expect(all.length).to.be.greaterThan(30);
  });

  for (const ex of all) {
    it(`line ${ex.line}: ${ex.kind} of ${ex.name} ${ex.kind === 'example' ? 'validates' : 'is refused'}`, () => {
      const p = problem(ex);
      if (ex.kind === 'example') expect(p, `docs/protocol.md:${ex.line}`).to.equal(null);
      else expect(p, `docs/protocol.md:${ex.line} should be refused`).to.be.a('string');
    });
  }

  it('shows every message of every direction', () => {
    for (const direction of DIRECTIONS) {
      for (const type of Object.keys(validate[direction])) {
        const name = `${direction}.${type}`;
        expect(
          all.some((ex) => ex.kind === 'example' && ex.name === name),
          `no example of ${name}`,
        ).to.equal(true);
      }
    }
  });

  const tables = fieldTables(readFileSync(DOC, 'utf8'));
  it('has field tables', () => {
    expect(tables.length).to.be.greaterThan(5);
  });
  for (const t of tables) {
    it(`line ${t.line}: the field table of ${t.name} lists every field, and which are required`, () => {
      const schema = validatorOf(t.name).schema as unknown as { properties: Record<string, unknown>; required?: string[] };
      const fields = Object.keys(schema.properties).filter((k) => !(k === 'type' && t.name.includes('.')));
      expect([...t.rows.keys()].sort(), `docs/protocol.md:${t.line}`).to.deep.equal(fields.sort());
      for (const [name, required] of t.rows) {
        expect(required, `docs/protocol.md:${t.line}: ${name} required`).to.equal((schema.required ?? []).includes(name));
      }
    });
  }

  it('examples with attachments count their refs', () => {
    for (const ex of all) {
      const v = ex.value as { attachments?: number };
      if (typeof v !== 'object' || v === null || v.attachments === undefined) continue;
      const refs = JSON.stringify(v).match(/"\$attachment":\s*\d+/g) ?? [];
      expect(refs.length, `docs/protocol.md:${ex.line}`).to.equal(v.attachments);
    }
  });
});
