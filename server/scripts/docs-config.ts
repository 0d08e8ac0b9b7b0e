/**
 * `npm run docs:config`: writes the configuration table of README.md from the options' schema
 * (server/src/config.ts), in place of the table that starts with `| env | flag | default |`.
 * test/server/config-docs.test.ts fails while the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configTable } from '../src/config.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const text = readFileSync(README, 'utf8');
const lines = text.split('\n');
const start = lines.findIndex((l) => l.startsWith('| env | flag | default |'));
if (start < 0) throw new Error('README.md: no configuration table (a line starting "| env | flag | default |")');
let end = start;
while (end < lines.length && lines[end].startsWith('|')) end++;
lines.splice(start, end - start, ...configTable().split('\n'));
const next = lines.join('\n');
if (next === text) console.log('README.md: the configuration table is up to date');
else {
  writeFileSync(README, next);
  console.log('README.md: configuration table written');
}
