// The per-Check metric families export exactly what prom-client's Counter and Histogram export for the same
// observations (text exposition and the JSON the cluster aggregator merges).
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../src/observability/hot-metrics.js';

const BUCKETS = [0.0001, 0.001, 0.01, 0.1];
const OBSERVATIONS: Array<[string, number]> = [
  ['allow', 0.00005],
  ['allow', 0.0001],
  ['allow', 0.0004],
  ['deny', 0.02],
  ['deny', 5],
  ['allow', 0.05],
];

function both() {
  const theirs = new Registry();
  const ours = new Registry();
  const pc = {
    counter: new Counter({ name: 'x_checks_total', help: 'Checks', labelNames: ['policy', 'decision'], registers: [theirs] }),
    histogram: new Histogram({ name: 'x_duration_seconds', help: 'Duration', labelNames: ['decision'], buckets: BUCKETS, registers: [theirs] }),
  };
  const hot = {
    counter: new HotCounter('x_checks_total', 'Checks', ['policy', 'decision'], [ours]),
    histogram: new HotHistogram('x_duration_seconds', 'Duration', ['decision'], BUCKETS, [ours]),
  };
  for (const [decision, seconds] of OBSERVATIONS) {
    pc.counter.inc({ policy: 'ns/p', decision });
    pc.histogram.observe({ decision }, seconds);
    hot.counter.labels('ns/p', decision).inc();
    hot.histogram.labels(decision).observe(seconds);
  }
  pc.counter.inc({ policy: 'other', decision: 'deny' }, 3);
  hot.counter.inc({ policy: 'other', decision: 'deny' }, 3);
  return { theirs, ours };
}

describe('hot metric families', () => {
  it('export the same text as prom-client', async () => {
    const { theirs, ours } = both();
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",decision="allow"} 3');
    expect(text).toContain('x_checks_total{policy="other",decision="deny"} 3');
  });

  it('merge across cluster workers like prom-client metrics', async () => {
    const a = both();
    const b = both();
    const merged = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]);
    const expected = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]);
    expect(await merged.metrics()).toBe(await expected.metrics());
    expect(await merged.metrics()).toContain('x_duration_seconds_count{decision="deny"} 4');
  });

  it('reset empties every series', async () => {
    const { ours } = both();
    ours.resetMetrics();
    expect(await ours.metrics()).not.toContain('x_checks_total{');
  });
});
