import { expect } from 'chai';
import { nanoid } from 'nanoid';
import { acceptedFrame, startedFrame, withSeq } from '../../server/src/core/frames.js';

describe('frames (the hub\'s hot-path text frames)', () => {
  it('writes accepted as the JSON of the message, with any ref the client gave', () => {
    const id = nanoid();
    expect(JSON.parse(acceptedFrame(id, 0))).to.deep.equal({ type: 'accepted', task_id: id, position: 0 });
    for (const ref of ['r-1', 'quote " backslash \\ newline \n é 😀 \u2028', 7, { a: [1, null] }, null, '']) {
      expect(JSON.parse(acceptedFrame(id, 12, ref))).to.deep.equal({ type: 'accepted', task_id: id, position: 12, ref });
    }
  });

  it('writes started as the JSON of the message', () => {
    for (let i = 0; i < 50; i++) {
      const id = nanoid();
      expect(JSON.parse(startedFrame(id, i + 1, 2))).to.deep.equal({ type: 'started', task_id: id, seq: i + 1, attempt: 2 });
    }
  });

  it('adds the hub\'s seq last to a worker\'s frame, so that it wins over a seq the worker sent', () => {
    expect(JSON.parse(withSeq('{"type":"progress","task_id":"t","seq":99} \n', 4))).to.deep.equal({ type: 'progress', task_id: 't', seq: 4 });
  });
});
