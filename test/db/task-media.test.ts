import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unwritten, writeMediaFiles } from '../../server/src/store/task-media.js';

const hex = (pieces: Uint8Array[]) => pieces.map((p) => Buffer.from(p).toString('hex'));

describe('media files', () => {
  it('unwritten: what is left of the pieces after a short write, empty ones left out', () => {
    const pieces = [Buffer.from('abc'), Buffer.from(''), Buffer.from('defg')];
    // Empty pieces are left out: they have nothing to write.
    expect(hex(unwritten(pieces, 0))).to.deep.equal(hex([Buffer.from('abc'), Buffer.from('defg')]));
    expect(hex(unwritten(pieces, 2))).to.deep.equal(hex([Buffer.from('c'), Buffer.from('defg')]));
    expect(hex(unwritten(pieces, 3))).to.deep.equal(hex([Buffer.from('defg')]));
    expect(hex(unwritten(pieces, 5))).to.deep.equal(hex([Buffer.from('fg')]));
    expect(unwritten(pieces, 7)).to.deep.equal([]);
  });

  it('writes each file from its pieces, replacing what was there, in a folder made when missing', async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'uh-media-')), 'media');
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 7);
    await writeMediaFiles(dir, [
      ['a', [Buffer.from('head'), big, Buffer.alloc(0), Buffer.from('tail')]],
      ['b', [Buffer.from('old contents, longer than the new')]],
    ]);
    await writeMediaFiles(dir, [['b', [Buffer.from('new')]]]);
    expect(fs.readFileSync(path.join(dir, 'a')).equals(Buffer.concat([Buffer.from('head'), big, Buffer.from('tail')]))).to.equal(true);
    expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).to.equal('new');
  });

  it('makes the folder again when it was removed after a first write', async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'uh-media-')), 'media');
    await writeMediaFiles(dir, [['a', [Buffer.from('one')]]]);
    fs.rmSync(dir, { recursive: true });
    await writeMediaFiles(dir, [['b', [Buffer.from('two')]]]);
    expect(fs.readFileSync(path.join(dir, 'b'), 'utf8')).to.equal('two');
  });
});
