import { expect } from 'chai';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../server/src/http/series.js';

describe("The hot path's counter and histogram (series.ts)", () => {
  it("print the same exposition text as prom-client's Counter and Histogram for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const buckets = [0.01, 0.1, 1, 10];
    const fc = new FastCounter({ name: 'c_total', help: 'a counter', registry: ours });
    const pc = new Counter({ name: 'c_total', help: 'a counter', labelNames: ['service', 'code'], registers: [theirs] });
    const fh = new FastHistogram({ name: 'h_seconds', help: 'a histogram', buckets, registry: ours });
    const ph = new Histogram({ name: 'h_seconds', help: 'a histogram', labelNames: ['service'], buckets, registers: [theirs] });
    const values = [0, 0.01, 0.011, 0.5, 1, 9.99, 10, 11, 1e6, 0.002];
    for (const [i, v] of values.entries()) {
      const labels = { service: i % 3 === 0 ? 'a "quoted" one' : 'b' };
      fh.series(labels).observe(v);
      ph.observe(labels, v);
      const c = { service: labels.service, code: i % 2 ? '' : 'task_failed' };
      fc.series(c).value++;
      pc.inc(c);
    }
    expect(await ours.metrics()).to.equal(await theirs.metrics());
  });

  it('give the same series object for the same labels, and ignore a value that is not finite', async () => {
    const registry = new Registry();
    const h = new FastHistogram({ name: 'h', help: 'h', buckets: [1], registry });
    expect(h.series({ s: 'x' })).to.equal(h.series({ s: 'x' }));
    h.series({ s: 'x' }).observe(Number.NaN);
    h.series({ s: 'x' }).observe(Number.POSITIVE_INFINITY);
    h.series({ s: 'x' }).observe(0.5);
    expect(await registry.metrics())
      .to.include('h_count{s="x"} 1')
      .and.include('h_sum{s="x"} 0.5');
  });
});
