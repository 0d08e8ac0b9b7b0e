import { expect } from 'chai';
import { ERROR_STATUS, HubError } from '@utils-hub/protocol';

describe('HubError', () => {
  it('carries the status of its code', () => {
    const e = new HubError('queue_full', 'full');
    expect(e.status).to.equal(ERROR_STATUS.queue_full);
    expect(e.toBody()).to.deep.equal({ error: { code: 'queue_full', message: 'full' } });
  });
});
