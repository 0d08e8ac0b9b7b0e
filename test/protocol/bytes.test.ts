/**
 * The protocol's browser-safe core: portable base64 against Node's, bytes joined and decoded, the
 * one backoff, and no Node API anywhere in protocol/src.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { backoffDelay, base64ByteLength, decodeUtf8, FrameDecoder, isBase64, joinBytes, portableBase64 } from '@utils-hub/protocol';

describe('protocol core: bytes and backoff', () => {
  it('portable base64 agrees with Node for any bytes, both ways', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        const text = portableBase64.encode(bytes);
        expect(text).to.equal(Buffer.from(bytes).toString('base64'));
        expect(isBase64(text)).to.equal(true);
        expect(base64ByteLength(text)).to.equal(bytes.length);
        const back = portableBase64.decode(text);
        expect(Buffer.isBuffer(back)).to.equal(false);
        expect([...back]).to.deep.equal([...bytes]);
        // Unpadded base64 reads the same.
        expect([...portableBase64.decode(text.replace(/=+$/, ''))]).to.deep.equal([...bytes]);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes more than one chunk (over 24 KiB) in one piece', () => {
    const big = new Uint8Array(100_003).map((_, i) => (i * 7) & 255);
    expect(portableBase64.encode(big)).to.equal(Buffer.from(big).toString('base64'));
  });

  it('joins fragments and keeps a lone fragment as it is', () => {
    const a = new Uint8Array([1, 2]);
    expect(joinBytes([a])).to.equal(a);
    expect([...joinBytes([a, new Uint8Array([3]), new Uint8Array(0)])]).to.deep.equal([1, 2, 3]);
  });

  it('decodes UTF-8 as Buffer does: a BOM is kept, broken sequences become U+FFFD', () => {
    for (const bytes of [Buffer.from('\ufeff{"type":"x"}'), Buffer.from([0x7b, 0xff, 0xc3]), Buffer.from('héllo ✓ 𝄞')]) {
      expect(decodeUtf8(bytes)).to.equal(bytes.toString('utf8'));
    }
  });

  it('reads a text frame given as bytes, and binary frames as ArrayBuffer or fragments', () => {
    const got: unknown[] = [];
    const errors: unknown[] = [];
    const d = new FrameDecoder({ onMessage: (m) => got.push(m), onError: (e) => errors.push(e) });
    d.push(new TextEncoder().encode('{"type":"result","task_id":"t","result":[{"$attachment":0},{"$attachment":1}],"attachments":2}'), false);
    d.push(new Uint8Array([97, 98]).buffer, true);
    d.push([new Uint8Array([99]), new Uint8Array([100])], true);
    expect(errors).to.deep.equal([]);
    const result = (got[0] as { result: { data: Uint8Array }[] }).result;
    expect(result.map((r) => Buffer.from(r.data).toString())).to.deep.equal(['ab', 'cd']);
  });

  it('backs off exponentially with jitter in the upper half, capped, from attempt 0 (negative counts as 0)', () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).to.equal(250);
    expect(backoffDelay(-3, 500, 30_000, () => 0.999999)).to.equal(500);
    expect(backoffDelay(3, 500, 30_000, () => 0)).to.equal(2000);
    expect(backoffDelay(3, 500, 30_000, () => 0.5)).to.equal(3000);
    expect(backoffDelay(1000, 500, 30_000, () => 0)).to.equal(15_000);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(2, 100, 10_000);
      expect(d).to.be.within(200, 400);
    }
  });

  it('protocol/src uses no Node API: no Buffer, process, require or node: import', () => {
    const dir = fileURLToPath(new URL('../../protocol/src/', import.meta.url));
    for (const file of readdirSync(dir)) {
      // Comments may name Buffer (as what passes through); code may not.
      const code = readFileSync(dir + file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      expect(code, file).to.not.match(/\bBuffer\b|\bprocess\.|\brequire\(|from 'node:|\bglobalThis\b/);
    }
  });
});
