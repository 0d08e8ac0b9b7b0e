import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { defineService, HubError } from '@utils-hub/worker-client';
import { teardown, uniqueName } from './support.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function definitionError(definition: Record<string, unknown>): Error {
  try {
    defineService({ name: uniqueName(), description: '', input: [], handler: () => null, ...definition } as never);
  } catch (err) {
    return err as Error;
  }
  throw new Error('defineService accepted it');
}

describe('worker-client', () => {
  describe('#defineService', () => {
    it('fails at once on a bad description, naming the field', () => {
      const dup = definitionError({
        input: [
          { argument_name: 'a', type: 'int' },
          { argument_name: 'a', type: 'str' },
        ],
      });
      expect(dup).to.be.instanceOf(HubError);
      expect(dup).to.include({ code: 'bad_service_description' });
      expect(dup.message).to.equal('input[1].argument_name: duplicate "a"');
      expect(definitionError({ input: [{ argument_name: 'n', type: 'int', default: 'x' }] }).message).to.match(/^input\[0\]\.default: /);
      expect(definitionError({ input: [{ argument_name: 'n', type: 'integer' }] }).message).to.match(/^input\[0\]\.type: must be one of/);
      expect(definitionError({ name: 'has space' }).message).to.match(/^name: /);
      expect(definitionError({ output: [{ argument_name: 'x', type: 'str', mime: ['image/png'] }] }).message).to.match(/^output\[0\]\.mime: /);
    });

    it('fails at once on a bad option, naming it', () => {
      expect(definitionError({ concurrency: 0 }))
        .to.be.instanceOf(TypeError)
        .with.property('message')
        .match(/concurrency/);
      expect(definitionError({ handler: 'nope' }).message).to.match(/handler/);
    });

    it('keeps a frozen copy of the description', () => {
      const input = [{ argument_name: 'a', type: 'int' as const, choices: [1, 2] }];
      const service = defineService({ name: uniqueName(), description: 'd', input, handler: () => null });
      teardown(() => service.close());
      input[0].choices.push(3);
      expect(service.me.input[0].choices).to.deep.equal([1, 2]);
      expect(Object.isFrozen(service.me.input[0])).to.equal(true);
      expect(service.concurrency).to.equal(1);
    });

    it('types the handler args from the input declaration (checked by tsc)', async function () {
      this.timeout(60_000);
      const dir = mkdtempSync(path.join(tmpdir(), 'wc-types-'));
      teardown(() => rmSync(dir, { recursive: true, force: true }));
      const config = path.join(dir, 'tsconfig.json');
      writeFileSync(
        config,
        JSON.stringify({
          extends: path.join(ROOT, 'tsconfig.base.json'),
          compilerOptions: {
            noEmit: true,
            composite: false,
            declaration: false,
            declarationMap: false,
            rootDir: ROOT,
            typeRoots: [path.join(ROOT, 'node_modules/@types')],
          },
          files: [path.join(ROOT, 'test/worker-client/types.check.ts')],
        }),
      );
      const out = await new Promise<string>((resolve) => {
        execFile(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', config], { cwd: ROOT }, (err, stdout, stderr) =>
          resolve(err ? `${stdout}${stderr}` || String(err) : ''),
        );
      });
      expect(out).to.equal('');
    });
  });
});
