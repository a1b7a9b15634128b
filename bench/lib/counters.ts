// Reads egress_authz_checks_total from a server's /metrics, summed by decision: the server's own word on
// what it answered (h2load counts HTTP 200 even for gRPC errors).
export type DecisionCounts = Record<string, number>;

export async function readDecisionCounts(adminUrl: string): Promise<DecisionCounts> {
  const res = await fetch(`${adminUrl}/metrics`);
  if (!res.ok) throw new Error(`GET ${adminUrl}/metrics: HTTP ${res.status}`);
  const counts: DecisionCounts = {};
  for (const line of (await res.text()).split('\n')) {
    if (!line.startsWith('egress_authz_checks_total{')) continue;
    const decision = /decision="([^"]*)"/.exec(line)?.[1] ?? '?';
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    counts[decision] = (counts[decision] ?? 0) + value;
  }
  return counts;
}

export function diffCounts(after: DecisionCounts, before: DecisionCounts): DecisionCounts {
  const out: DecisionCounts = {};
  for (const k of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Cumulative bucket counts of a Prometheus histogram, summed over label sets: upper bound (s) → count. */
export type Buckets = Map<number, number>;

export async function readHistogram(adminUrl: string, name: string): Promise<Buckets> {
  const res = await fetch(`${adminUrl}/metrics`);
  if (!res.ok) throw new Error(`GET ${adminUrl}/metrics: HTTP ${res.status}`);
  const buckets: Buckets = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (!le) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return buckets;
}

export function diffBuckets(after: Buckets, before: Buckets): Buckets {
  const out: Buckets = new Map();
  for (const [le, n] of after) out.set(le, n - (before.get(le) ?? 0));
  return out;
}

/** The smallest bucket bound holding at least p% of the observations ("p99 ≤ 50 ms"). */
export function bucketPercentile(buckets: Buckets, p: number): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  for (const b of bounds) if ((buckets.get(b) ?? 0) >= (p / 100) * total) return b;
  return Infinity;
}
