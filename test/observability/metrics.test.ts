// /metrics after a known mix of allows and denies shows exactly those counts, with bounded labels.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { parsePrometheus, seriesValue } from '../server/ops-helpers.js';

const POLICY = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: httpbin
spec:
  hosts: [httpbin.org]
  variables:
    - name: team
      expression: request.headers[?"x-workload"].orValue("")
  authorization:
    known-team:
      expression: variables.team == "team-a"
  response:
    success:
      headers:
        x-team: variables.team
`;

let server: TestServer;
let series: Map<string, number>;
let text: string;
let contentType: string | null;

beforeAll(async () => {
  server = await startTestServer({ files: { 'httpbin.yaml': POLICY } });
  const c = server.client;
  const allow = () => c.check({ host: 'httpbin.org', path: '/very/secret-path-4711', headers: { 'x-workload': 'team-a' } });
  const denyByPolicy = () => c.check({ host: 'httpbin.org', path: '/other', headers: { 'x-workload': 'team-zz-unlisted' } });
  const denyNoPolicy = () => c.check({ host: 'unknown.example', path: '/' });
  const results = await Promise.all([
    ...Array.from({ length: 7 }, allow),
    ...Array.from({ length: 3 }, denyByPolicy),
    ...Array.from({ length: 2 }, denyNoPolicy),
  ]);
  // The mix is what we think it is.
  expect(results.map((r) => (r.allowed ? 'allow' : `deny ${r.httpStatus}`))).toEqual([
    ...Array(7).fill('allow'),
    ...Array(5).fill('deny 403'),
  ]);
  // A malformed CheckRequest is counted too.
  await expect(c.checkRaw(Buffer.from([0xff, 0xff, 0xff]))).rejects.toThrow();
  const res = await fetch(`${server.adminUrl}/metrics`);
  contentType = res.headers.get('content-type');
  text = await res.text();
  series = parsePrometheus(text);
});

afterAll(async () => {
  await server?.close();
});

describe('/metrics', () => {
  it('counts checks by policy, decision and status', () => {
    expect(contentType).toContain('text/plain');
    expect(seriesValue(series, 'egress_authz_checks_total', { policy: 'httpbin', decision: 'allow', status: '200' })).toBe(7);
    expect(seriesValue(series, 'egress_authz_checks_total', { policy: 'httpbin', decision: 'deny', status: '403' })).toBe(3);
    expect(seriesValue(series, 'egress_authz_checks_total', { policy: '(none)', decision: 'deny', status: '403' })).toBe(2);
    expect(seriesValue(series, 'egress_authz_checks_total', { policy: '(none)', decision: 'invalid', status: '400' })).toBe(1);
  });

  it('observes check durations and per-evaluator durations', () => {
    expect(seriesValue(series, 'egress_authz_check_duration_seconds_count', { decision: 'allow' })).toBe(7);
    expect(seriesValue(series, 'egress_authz_check_duration_seconds_count', { decision: 'deny' })).toBe(5);
    // The +Inf bucket holds every observation; the smallest bucket is sub-millisecond.
    expect(seriesValue(series, 'egress_authz_check_duration_seconds_bucket', { decision: 'allow', le: '+Inf' })).toBe(7);
    expect(seriesValue(series, 'egress_authz_check_duration_seconds_bucket', { decision: 'allow', le: '0.0001' })).toBeTypeOf('number');
    // Ten checks reached the policy's authorization stage; none errored.
    expect(seriesValue(series, 'egress_authz_evaluator_duration_seconds_count', { evaluator: 'authorization' })).toBe(10);
    expect(seriesValue(series, 'egress_authz_evaluator_errors_total', { evaluator: 'authorization' })).toBeUndefined();
    expect(seriesValue(series, 'egress_authz_checks_in_flight')).toBe(0);
  });

  it('reports the loaded policies and reloads', () => {
    expect(seriesValue(series, 'egress_authz_policies_loaded')).toBe(1);
    expect(seriesValue(series, 'egress_authz_policy_reloads_total', { result: 'ok' })).toBe(1);
    expect(seriesValue(series, 'egress_authz_policy_reloads_total', { result: 'failed' })).toBe(0);
    expect(seriesValue(series, 'egress_authz_policy_last_reload_successful')).toBe(1);
  });

  it('keeps label values bounded: no paths, header values or unknown hosts', () => {
    for (const leak of ['secret-path-4711', 'team-a', 'team-zz-unlisted', 'unknown.example', '/other']) expect(text).not.toContain(leak);
  });
});

describe('Metrics', () => {
  it('timeBackend records latency and outcome, including failures', async () => {
    const m = new Metrics();
    await m.timeBackend('vault', async () => 'ok');
    await m.timeBackend('vault', async () => ({ status: 404 }), (v) => (v.status === 404 ? 'not_found' : 'ok'));
    await expect(m.timeBackend('vault', async () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    const s = parsePrometheus(await m.registry.metrics());
    expect(seriesValue(s, 'egress_authz_backend_calls_total', { backend: 'vault', outcome: 'ok' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_backend_calls_total', { backend: 'vault', outcome: 'not_found' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_backend_calls_total', { backend: 'vault', outcome: 'error' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_backend_duration_seconds_count', { backend: 'vault' })).toBe(3);
  });

  it('cacheObserver and stageObserver feed their counters', async () => {
    const m = new Metrics();
    const c = m.cacheObserver();
    c.onHit('jwks');
    c.onHit('jwks');
    c.onMiss('jwks');
    c.onCoalesced('jwks');
    const st = m.stageObserver();
    st.stageDone('identity', 0.002, false);
    st.stageDone('identity', 0.2, true);
    st.failed('response');
    const s = parsePrometheus(await m.registry.metrics());
    expect(seriesValue(s, 'egress_authz_cache_events_total', { cache: 'jwks', event: 'hit' })).toBe(2);
    expect(seriesValue(s, 'egress_authz_cache_events_total', { cache: 'jwks', event: 'miss' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_cache_events_total', { cache: 'jwks', event: 'coalesced' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_evaluator_duration_seconds_count', { evaluator: 'identity' })).toBe(2);
    expect(seriesValue(s, 'egress_authz_evaluator_errors_total', { evaluator: 'identity' })).toBe(1);
    expect(seriesValue(s, 'egress_authz_evaluator_errors_total', { evaluator: 'response' })).toBe(1);
  });

  it('turns on Node process metrics when asked (serve does)', async () => {
    expect(await new Metrics({ defaultMetrics: true }).registry.metrics()).toContain('process_cpu_user_seconds_total');
    expect(await new Metrics().registry.metrics()).not.toContain('process_cpu_user_seconds_total');
  });
});
