// deploy/grafana/egress-authz.json stays true to the metrics the server exposes: every series it queries
// exists, the panels the operations issue asks for are there, and the layout has no overlapping panels.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string }> };
  annotations: { list: Array<{ expr?: string }> };
}

const dashboard = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../deploy/grafana/egress-authz.json'), 'utf8')) as Dashboard;
const queries = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr }))),
  ...dashboard.annotations.list.filter((a) => a.expr).map((a) => ({ panel: 'annotation', expr: a.expr! })),
];

async function exposedSeriesNames(): Promise<Set<string>> {
  const m = new Metrics({ defaultMetrics: true });
  // Give labelled metrics a sample so they are exposed.
  m.checks.inc({ policy: 'p', decision: 'allow', status: '200' });
  m.checkDuration.observe({ decision: 'allow' }, 0.001);
  m.evaluatorDuration.observe({ evaluator: 'identity' }, 0.001);
  m.evaluatorErrors.inc({ evaluator: 'identity' });
  m.backendCalls.inc({ backend: 'vault', outcome: 'ok' });
  m.backendDuration.observe({ backend: 'vault' }, 0.001);
  m.cacheEvents.inc({ cache: 'jwks', event: 'hit' });
  const names = new Set<string>();
  for (const line of (await m.registry.metrics()).split('\n')) {
    const name = /^([a-zA-Z_:][\w:]*)/.exec(line)?.[1];
    if (name && !line.startsWith('#')) names.add(name);
  }
  return names;
}

describe('Grafana dashboard', () => {
  it('queries only series the server exposes', async () => {
    const exposed = await exposedSeriesNames();
    const used = new Set(queries.flatMap((q) => q.expr.match(/\b(?:egress_authz|process|nodejs)_[a-z0-9_]+\b/g) ?? []));
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((n) => !exposed.has(n))).toEqual([]);
  });

  it('has the panels operators need', () => {
    const byTitle = new Map(dashboard.panels.map((p) => [p.title, (p.targets ?? []).map((t) => t.expr).join('\n')]));
    expect(byTitle.get('Decisions by policy and status')).toMatch(/sum by \(policy, decision, status\) \(rate\(egress_authz_checks_total/);
    expect(byTitle.get('Check latency p50 / p99')).toMatch(/histogram_quantile\(0\.5,[\s\S]*histogram_quantile\(0\.99,/);
    expect(byTitle.get('Backend errors')).toMatch(/egress_authz_backend_calls_total\{[^}]*outcome=~"error\|5xx\|timeout"/);
    expect(byTitle.get('Cache hit ratio')).toMatch(/egress_authz_cache_events_total\{[^}]*event=~"hit\|coalesced"[\s\S]*\/ sum by \(cache\)/);
    expect(byTitle.get('Policy reloads')).toMatch(/egress_authz_policy_reloads_total/);
    expect(byTitle.get('Last reload OK')).toMatch(/egress_authz_policy_last_reload_successful/);
  });

  it('is well formed: quantiles keep le, parentheses balance, one data source variable, no overlaps, unique ids', () => {
    for (const q of queries) {
      for (const m of q.expr.matchAll(/histogram_quantile\([\d.]+, sum by \(([^)]*)\)/g)) expect(m[1]!.split(/,\s*/), q.panel).toContain('le');
      let depth = 0;
      for (const ch of q.expr) {
        depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
        expect(depth, q.panel).toBeGreaterThanOrEqual(0);
      }
      expect(depth, q.panel).toBe(0);
      expect(q.expr, q.panel).toContain('job=~"$job"');
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'job', 'policy']);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.datasource?.uid, p.title).toBe('${datasource}');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps another panel`).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });
});
