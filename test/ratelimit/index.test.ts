// Loading `rateLimits` / RateLimitPolicy `limits`: every mistake is reported at file:line:col, at load.
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Services } from '../../src/pipeline/services.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import { MemoryRateLimitStore } from '../../src/ratelimit/memory-store.js';
import { makePolicyDir, seedPolicy } from '../support/test-server.js';

function services(): Services {
  return new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
}

function load(rateLimits: string, svc = services()) {
  const text = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: limits}
spec:
  hosts: [api.example.com]
  rateLimits:
${rateLimits.replace(/^/gm, '    ')}
`;
  const result = loadPolicyDirectory(makePolicyDir({ 'limits.yaml': text }), svc);
  return result.ok ? [] : result.diagnostics.map(formatDiagnostic);
}

describe('compileRateLimits', () => {
  it('loads the seed RateLimitPolicy with its HTTPRoute, as written', () => {
    const svc = services();
    const dir = makePolicyDir({
      'rlp.yaml': seedPolicy('openai-rate-limit.yaml'),
      'route.yaml': seedPolicy('openai-external-httproute.yaml'),
    });
    const result = loadPolicyDirectory(dir, svc);
    expect(result.ok).toBe(true);
    expect(result.ok && result.set.size).toBe(1);
    // The store is per Services (memory without --redis-url), created once for every policy.
    expect(rateLimiter(svc).store).toBeInstanceOf(MemoryRateLimitStore);
  });

  it('loads a native limit with every field', () => {
    expect(
      load(`per-team:
  rates: [{limit: 100, window: 1m}, {limit: 10, window: 1s}]
  counters:
    - auth.identity.username
    - expression: request.headers[?"x-team"].orValue("")
  when: request.method == "POST"
  failureMode: deny
  cost: 'request.path == "/batch" ? 10 : 1'
tokens:
  rates: [{limit: 1000, window: 1h30m}]
  when: [{predicate: 'request.path.startsWith("/v1")'}]
  cost: 5`),
    ).toEqual([]);
  });

  it.each([
    ['unknown field with a suggestion', `l:\n  rates: [{limit: 1, window: 1m}]\n  counter: [request.host]`, /limits\.yaml:9:7: unknown field "counter" in rate limit "l" \(did you mean "counters"\?\)/],
    ['a bad window', `l:\n  rates: [{limit: 1, window: 1.5m}]`, /limits\.yaml:8:34: rate limit "l": invalid rate-limit window "1\.5m"/],
    ['a negative limit', `l:\n  rates: [{limit: -1, window: 1m}]`, /limit must be a whole number ≥ 0, got -1/],
    ['a fractional limit', `l:\n  rates: [{limit: 1.5, window: 1m}]`, /limit must be a whole number ≥ 0, got 1\.5/],
    ['a missing window', `l:\n  rates: [{limit: 1}]`, /give both limit and window/],
    ['no rates', `l:\n  counters: [request.host]`, /rate limit "l": give rates/],
    ['an empty rate list', `l:\n  rates: []`, /give at least one rate/],
    ['two rates with one window', `l:\n  rates: [{limit: 1, window: 60s}, {limit: 2, window: 1m}]`, /two rates with the window 1m/],
    ['a bad failureMode', `l:\n  rates: [{limit: 1, window: 1m}]\n  failureMode: open`, /failureMode must be allow or deny, got "open"/],
    ['a counter that does not compile', `l:\n  rates: [{limit: 1, window: 1m}]\n  counters: [request.nope]`, /limits\.yaml:9:26: rate limit "l"\.counters\[0\]\.expression: type error/],
    ['a counter map without expression', `l:\n  rates: [{limit: 1, window: 1m}]\n  counters: [{expr: request.host}]`, /unknown field "expr" in rate limit "l"\.counters\[0\]/],
    ['a when that is not bool', `l:\n  rates: [{limit: 1, window: 1m}]\n  when: request.host`, /when: expression must return bool/],
    ['a negative cost', `l:\n  rates: [{limit: 1, window: 1m}]\n  cost: -2`, /cost must be a whole number from 0 to 1000000000, got -2/],
    ['a cost expression that is not an int', `l:\n  rates: [{limit: 1, window: 1m}]\n  cost: request.host`, /cost: expression must return int/],
    ['a limit that is not a mapping', `l: 100`, /rate limit "l": expected a mapping/],
  ])('reports %s', (_what, yaml, pattern) => {
    const errors = load(yaml);
    expect(errors.join('\n')).toMatch(pattern);
  });

  it('reads spec.defaults.limits of a RateLimitPolicy like spec.limits', () => {
    const rlp = (window: string) => `apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata: {name: defaults, namespace: gateway-system}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: openai-external}
  defaults:
    limits:
      per-workload:
        rates: [{limit: 100, window: ${window}}]
        counters: [{expression: auth.identity.username}]
`;
    const route = seedPolicy('openai-external-httproute.yaml');
    expect(loadPolicyDirectory(makePolicyDir({ 'route.yaml': route, 'rlp.yaml': rlp('1m') }), services())).toMatchObject({ ok: true });
    const broken = loadPolicyDirectory(makePolicyDir({ 'route.yaml': route, 'rlp.yaml': rlp('1x') }), services());
    expect(broken.ok ? [] : broken.diagnostics.map((d) => d.message)).toEqual([
      expect.stringMatching(/^rate limit "per-workload": invalid rate-limit window "1x"/),
    ]);
  });

  it('reports Kuadrant limits with the same checks', () => {
    const svc = services();
    const dir = makePolicyDir({
      'route.yaml': seedPolicy('openai-external-httproute.yaml'),
      'rlp.yaml': `apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata: {name: bad, namespace: gateway-system}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: openai-external}
  limits:
    per-workload:
      rates: [{limit: 100, window: 1 minute}]
      counters: [{expression: auth.identity.username}]
      when: [{predicate: 'request.method = "POST"'}]
`,
    });
    const result = loadPolicyDirectory(dir, svc);
    const errors = result.ok ? [] : result.diagnostics.map(formatDiagnostic);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/rlp\.yaml:8:36: rate limit "per-workload": invalid rate-limit window "1 minute"/);
    expect(errors[1]).toMatch(/rlp\.yaml:10:42: rate limit "per-workload"\.when\.predicate: syntax error/);
  });
});
