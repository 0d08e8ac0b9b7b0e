import { expect } from 'chai';
import { nanoid } from 'nanoid';
import { acceptedFrame, clientFrame, startedFrame, withSeq } from '../../server/src/core/frames.js';
import { checkFrame, contractProblem, strayReport } from '../helpers/contract.js';

describe("frames (the hub's hot-path text frames)", () => {
  it('writes accepted as the JSON of the message, with any ref the client gave', () => {
    const id = nanoid();
    expect(JSON.parse(acceptedFrame(id, 0))).to.deep.equal({ type: 'accepted', task_id: id, position: 0 });
    for (const ref of ['r-1', 'quote " backslash \\ newline \n é 😀 \u2028', '']) {
      const msg = JSON.parse(acceptedFrame(id, 12, ref));
      expect(msg).to.deep.equal({ type: 'accepted', task_id: id, position: 12, ref });
      expect(contractProblem('hubToClient', msg)).to.equal(undefined);
    }
  });

  it('writes started as the JSON of the message', () => {
    for (let i = 0; i < 50; i++) {
      const id = nanoid();
      const msg = JSON.parse(startedFrame(id, i + 1, 2));
      expect(msg).to.deep.equal({ type: 'started', task_id: id, seq: i + 1, attempt: 2 });
      expect(contractProblem('hubToClient', msg)).to.equal(undefined);
    }
  });

  it("adds the hub's seq last to a worker's frame, so that it wins over a seq the worker sent", () => {
    expect(JSON.parse(withSeq('{"type":"progress","task_id":"t","seq":99} \n', 4))).to.deep.equal({ type: 'progress', task_id: 't', seq: 4 });
  });

  it("turns a worker's progress into a client's progress that fits the contract", () => {
    const msg = JSON.parse(withSeq('{"type":"progress","task_id":"t","progress":0.5}', 3));
    expect(contractProblem('hubToClient', msg)).to.equal(undefined);
    expect(contractProblem('hubToClient', JSON.parse('{"type":"progress","task_id":"t","progress":0.5}'))).to.match(/seq/);
  });

  it('writes typed messages as they are', () => {
    const text = clientFrame({ type: 'snapshot', task_id: 't', seq: 0, status: 'queued', progress: null, message: null, position: 2 });
    expect(contractProblem('hubToClient', JSON.parse(text))).to.equal(undefined);
  });
});

describe("the test peers' contract check", () => {
  it('passes a frame that fits and names the problem of one that strays', () => {
    expect(contractProblem('hubToClient', { type: 'accepted', task_id: 't', position: 0 })).to.equal(undefined);
    expect(contractProblem('hubToClient', { type: 'accepted', task_id: 't' })).to.match(/position/);
    expect(contractProblem('hubToWorker', { type: 'accepted', task_id: 't', position: 0 })).to.match(/no message of type "accepted"/);
    expect(contractProblem('clientToHub', { type: 'add_task', service_id: -1, args: {} })).to.match(/service_id/);
    expect(contractProblem('workerToHub', [1])).to.equal('not a JSON object');
    expect(strayReport('hubToWorker', { type: 'x', data: Buffer.alloc(3) }, 'peer A', 'why')).to.equal(
      'peer A received a hubToWorker frame that strays from the contract: why: {"type":"x","data":"<3 bytes>"}',
    );
  });

  it('fails the running test on a stray frame (thrown on a clean stack), not later ones', async () => {
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    try {
      const caught = new Promise<Error>((resolve) => process.once('uncaughtException', resolve));
      expect(checkFrame('hubToClient', { type: 'nope' }, 'peer B')).to.equal(false);
      const err = await caught;
      expect(err.message).to.match(/peer B received a hubToClient frame .*no message of type "nope"/);
    } finally {
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });
});
