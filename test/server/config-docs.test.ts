import { expect } from 'chai';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HubConfigSchema, configTable, startHelp } from '../../server/src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The README's configuration table: the lines from its `| env | flag | default |` header on. */
function readmeTable(): string {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('| env | flag | default |'));
  expect(start, 'README.md has a configuration table').to.be.at.least(0);
  let end = start;
  while (end < lines.length && lines[end].startsWith('|')) end++;
  return lines.slice(start, end).join('\n');
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('Configuration docs, from the options schema', () => {
  const envs = Object.values(HubConfigSchema.properties)
    .map((s) => (s as { env?: string }).env)
    .filter((e): e is string => e !== undefined);

  it("README.md's configuration table is the schema's (run npm run docs:config after changing an option)", () => {
    expect(readmeTable()).to.equal(configTable());
  });

  it('the table has one row per environment variable, each with its default and meaning', () => {
    const rows = configTable().split('\n').slice(2);
    expect(rows.map((r) => /^\| `(\w+)` \|/.exec(r)?.[1])).to.deep.equal(envs);
    for (const r of rows)
      expect(
        r
          .split(' | ')
          .map((c) => c.trim())
          .filter(Boolean),
      ).to.have.length.at.least(3);
    expect(envs).to.include.members(['HUB_MAX_BUFFERED_BYTES', 'HUB_COMMIT', 'HUB_MAX_QUEUE_TIMEOUT_MS', 'HUB_QUEUE_MAX_BYTES', 'HUB_MAX_SERVICE_BYTES']);
  });

  it('utils-hub start --help lists every option with its flag', () => {
    const help = startHelp();
    for (const env of envs) expect(help).to.match(new RegExp(`^  ${env}\\b`, 'm'));
    expect(help).to.include('HUB_PORT, --port').and.include('[--host H] [--port P] [--db URL] [--broker URL] [--cluster NAME] [--no-wait]');
  });

  it('nothing in server/src but config.ts reads process.env', () => {
    const readers = sources(join(ROOT, 'server', 'src'))
      .filter((f) => !f.endsWith(join('src', 'config.ts')))
      .filter((f) => /process\.env\b/.test(readFileSync(f, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')));
    expect(readers.map((f) => f.slice(ROOT.length))).to.deep.equal([]);
  });
});
