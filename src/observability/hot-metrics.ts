// Prometheus metrics updated on every Check, kept as plain numbers per series. prom-client's labelled metrics
// convert, validate and hash their label object on every observation, even through `labels(...)`, and
// allocate while doing it: 8–10 such calls per warm Check. These families look a series up once (by its
// label values) and then count with arithmetic; prom-client's registry exports them like its own metrics
// (they implement what the registry reads: name, help, type, aggregator, get(), reset()), and so does the
// cluster aggregator for `serve --workers N`.
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: ExportedValue[];
  aggregator: 'sum';
}

abstract class HotFamily<S> {
  readonly aggregator = 'sum' as const;
  private readonly byValues = new Map<string, { labels: Labels; series: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registers: readonly Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as never);
  }

  /** The series for these label values (in labelNames order), created on first use. */
  labels(...values: string[]): S {
    const key = values.length === 1 ? values[0]! : values.join('\0');
    let entry = this.byValues.get(key);
    if (!entry) {
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      entry = { labels, series: this.newSeries() };
      this.byValues.set(key, entry);
    }
    return entry.series;
  }

  reset(): void {
    this.byValues.clear();
  }

  protected seriesOf(labels: Labels): S {
    return this.labels(...this.labelNames.map((n) => String(labels[n] ?? '')));
  }

  protected entries(): Iterable<{ labels: Labels; series: S }> {
    return this.byValues.values();
  }

  protected abstract newSeries(): S;
}

export class CounterSeries {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

export class HotCounter extends HotFamily<CounterSeries> {
  readonly type = 'counter' as const;

  inc(labels: Labels, n = 1): void {
    this.seriesOf(labels).inc(n);
  }

  async get(): Promise<ExportedMetric> {
    const values: ExportedValue[] = [];
    for (const { labels, series } of this.entries()) values.push({ labels: { ...labels }, value: series.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected newSeries(): CounterSeries {
    return new CounterSeries();
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is above every bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram extends HotFamily<HistogramSeries> {
  readonly type = 'histogram' as const;
  private readonly bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registers: readonly Registry[]) {
    super(name, help, labelNames, registers);
    this.bounds = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    this.seriesOf(labels).observe(value);
  }

  async get(): Promise<ExportedMetric> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, series } of this.entries()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += series.counts[i]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: series.count, metricName: bucket });
      values.push({ labels: { ...labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected newSeries(): HistogramSeries {
    return new HistogramSeries(this.bounds);
  }
}
