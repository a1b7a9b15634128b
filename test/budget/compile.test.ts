// The `tokenBudgets` section at load: every mistake reported at the line and column it was written.
import { describe, expect, it } from 'vitest';
import { makePolicyDir } from '../support/test-server.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { Services } from '../../src/pipeline/services.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';

function load(files: Record<string, string>) {
  const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
  return loadPolicyDirectory(makePolicyDir(files), services);
}

const GOOD = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: good}
spec:
  hosts: [api.openai.com]
  tokenBudgets:
    provider: openai
    fallback: {input: 100, output: 400}
    reservation: {default: 1024, max: 8192}
    budgets:
      hourly:
        limit: 100000
        window: 1h
        counters: ['request.headers["x-team"]']
        when: request.method == "POST"
      output:
        limit: 20000
        window: 1h30m
        count: output
        failureMode: deny
`;

const BROKEN = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: broken}
spec:
  hosts: [api.anthropic.com]
  tokenBudgets:
    provider: mistral
    fallback: lots
    reservation: {max: 10}
    budgets:
      a:
        limit: -5
        window: 1h
      b:
        limit: 10
        window: 1.5h
        count: cached
      c:
        limit: 10
        window: 1m
        counters: [request.nope]
        failureMode: sometimes
        windw: 1m
`;

describe('tokenBudgets at load', () => {
  it('accepts the full syntax', () => {
    const result = load({ 'good.yaml': GOOD });
    expect(result.ok ? [] : result.diagnostics.map((d) => d.message)).toEqual([]);
  });

  it('reports every mistake with its position', () => {
    const result = load({ 'broken.yaml': BROKEN });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const found = result.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`);
    const expectAt = (line: number, text: string) =>
      expect(found.some((f) => f.startsWith(`${line}:`) && f.includes(text)), `${line}: ${text}\n${found.join('\n')}`).toBe(true);
    expectAt(7, 'mistral');
    expectAt(8, 'fallback');
    expectAt(9, 'reservation.default');
    expectAt(12, 'limit');
    expectAt(16, '1.5h');
    expectAt(17, 'cached');
    expectAt(21, 'nope');
    expectAt(22, 'sometimes');
    expectAt(23, 'windw');
  });

  it('two documents may not both budget the same host (their grants would overwrite each other)', () => {
    const other = GOOD.replace('name: good', 'name: second');
    const result = load({ 'a.yaml': GOOD, 'b.yaml': other });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.diagnostics.some((d) => d.message.includes('conflict'))).toBe(true);
  });

  it('a budget document composes with an authorizing one for the same host', () => {
    const auth = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: auth}
spec:
  hosts: [api.openai.com]
  authorization:
    post-only: request.method == "POST"
`;
    const result = load({ 'auth.yaml': auth, 'budget.yaml': GOOD });
    expect(result.ok ? [] : result.diagnostics.map((d) => d.message)).toEqual([]);
  });
});
