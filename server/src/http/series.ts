/**
 * A counter and a histogram for the hub's hot path: one series object per label set, made once
 * and kept by the caller, so that counting an ended task is a few additions (prom-client's own
 * `inc` and `observe` build, check and hash the labels on every call). They are registered in a
 * prom-client Registry like its metrics and print the same exposition text.
 */
import type { Registry } from 'prom-client';

type Labels = Readonly<Record<string, string>>;

/** One line of a metric as prom-client's Registry prints it. */
interface Sample {
  labels: Record<string, string | number>;
  /** Printed before `labels` (a histogram's series labels, before its `le`). */
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
}

/** What a prom-client Registry needs of a metric. */
abstract class Metric<S> {
  readonly aggregator = 'sum';
  readonly #series = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    registry: Registry,
  ) {
    (registry as unknown as { registerMetric(m: unknown): void }).registerMetric(this);
  }

  /** The series of `labels` (the same object for the same labels: keep it and count on it). */
  series(labels: Labels): S {
    const key = JSON.stringify(labels);
    let s = this.#series.get(key);
    if (!s) {
      s = this.make({ ...labels });
      this.#series.set(key, s);
    }
    return s;
  }

  protected abstract make(labels: Labels): S;
  protected abstract samples(series: Iterable<S>): Sample[];

  /** The metric for the registry's exposition. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.samples(this.#series.values()) };
  }

  /** Forgets every series (what prom-client's `resetMetrics` asks of a metric). */
  reset(): void {
    this.#series.clear();
  }
}

/** A series of a {@link FastCounter}. */
export interface CounterSeries {
  readonly labels: Labels;
  value: number;
}

/** A counter whose series are counted directly: `series.value++`. */
export class FastCounter extends Metric<CounterSeries> {
  constructor(options: { name: string; help: string; registry: Registry }) {
    super(options.name, options.help, 'counter', options.registry);
  }

  protected make(labels: Labels): CounterSeries {
    return { labels, value: 0 };
  }

  protected samples(series: Iterable<CounterSeries>): Sample[] {
    return [...series].map((s) => ({ labels: { ...s.labels }, value: s.value }));
  }
}

/** A series of a {@link FastHistogram}: `observe(seconds)`. */
export interface HistogramSeries {
  readonly labels: Labels;
  observe(value: number): void;
}

class Buckets implements HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.sum += value;
    this.count++;
    const { bounds } = this;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]) {
        this.counts[i]++;
        return;
      }
    }
  }
}

/** A histogram with fixed bucket bounds (ascending), printed as Prometheus expects. */
export class FastHistogram extends Metric<HistogramSeries> {
  readonly #bounds: readonly number[];

  constructor(options: { name: string; help: string; buckets: readonly number[]; registry: Registry }) {
    super(options.name, options.help, 'histogram', options.registry);
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
  }

  protected make(labels: Labels): HistogramSeries {
    return new Buckets(labels, this.#bounds);
  }

  protected samples(series: Iterable<HistogramSeries>): Sample[] {
    const out: Sample[] = [];
    for (const s of series as Iterable<Buckets>) {
      let acc = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        acc += s.counts[i];
        out.push({ labels: { le: this.#bounds[i] }, sharedLabels: { ...s.labels }, value: acc, metricName: `${this.name}_bucket` });
      }
      out.push({ labels: { le: '+Inf' }, sharedLabels: { ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      out.push({ labels: {}, sharedLabels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      out.push({ labels: {}, sharedLabels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return out;
  }
}
