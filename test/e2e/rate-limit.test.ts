// Issue 5 acceptance: the seed's RateLimitPolicy verbatim over real gRPC, budgets shared by two replicas
// through a real redis-server, and Redis outages handled per limit failureMode.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckRequestInput, CheckResult } from '../../src/cli/check-client.js';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import { RedisRateLimitStore } from '../../src/ratelimit/redis-store.js';
import { writeKubeconfig } from '../identity/support/kubeconfig.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { startRedisServer, type RedisServerHandle } from '../support/redis-server.js';
import { seedPolicy, startTestServer, type TestServer } from '../support/test-server.js';

const T0 = 1_700_000_000_000;
const TEAM_A = 'spiffe://cluster.local/ns/team-a/sa/client';
const TEAM_B = 'spiffe://cluster.local/ns/team-b/sa/client';

// A native authorizing document next to the seed's RateLimitPolicy (composition allows one of each per host):
// the spiffe method sets auth.identity.username (system:serviceaccount:<ns>:<sa>), which the seed's counter
// reads, with no token to mint — so the clock-driven tests need no API server. The seed's own AuthPolicy
// (kubernetesTokenReview) is tested with the same RateLimitPolicy further down.
const OPENAI_IDENTITY = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: openai-identity
  namespace: gateway-system
spec:
  hosts: [api.openai.com]
  authentication:
    mesh:
      spiffe:
        trustDomains: [cluster.local]
`;

const SEED_FILES = {
  'openai-rate-limit.yaml': seedPolicy('openai-rate-limit.yaml'),
  'openai-external-httproute.yaml': seedPolicy('openai-external-httproute.yaml'),
  'openai-identity.yaml': OPENAI_IDENTITY,
};

function openai(principal: string, extra: Partial<CheckRequestInput> = {}): CheckRequestInput {
  return { host: 'api.openai.com', method: 'POST', path: '/v1/chat/completions', principal, ...extra };
}

function header(result: CheckResult, name: string): string | undefined {
  const list = result.allowed ? result.responseHeadersToAdd : result.headers;
  return list.find((h) => h.key === name)?.value;
}

async function checkMany(server: TestServer, request: CheckRequestInput, count: number): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (let i = 0; i < count; i++) results.push(await server.client.check(request));
  return results;
}

function statuses(results: readonly CheckResult[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const r of results) counts[r.httpStatus] = (counts[r.httpStatus] ?? 0) + 1;
  return counts;
}

async function failureCount(server: TestServer, mode: 'allow' | 'deny'): Promise<number> {
  const metric = await server.metrics.ratelimitStoreFailures.get();
  return metric.values.find((v) => v.labels.mode === mode)?.value ?? 0;
}

function redisStoreOf(server: TestServer): RedisRateLimitStore {
  const store = rateLimiter(server.app.services).store;
  if (!(store instanceof RedisRateLimitStore)) throw new Error('expected the Redis store');
  return store;
}

function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

describe('the seed RateLimitPolicy (memory store, clock moved by the test)', () => {
  let server: TestServer;
  let now = T0;

  beforeAll(async () => {
    server = await startTestServer({ files: SEED_FILES });
    rateLimiter(server.app.services).now = () => now;
  });
  afterAll(() => server.close());

  it('allows 100 requests of one ServiceAccount per minute, answers the 101st with 429, resets after the window', async () => {
    const first100 = await checkMany(server, openai(TEAM_A), 100);
    expect(statuses(first100)).toEqual({ 200: 100 });
    expect(header(first100[0]!, 'ratelimit-policy')).toBe('"per-workload";q=100;w=60');
    expect(header(first100[0]!, 'ratelimit')).toBe('"per-workload";r=99;t=60');
    expect(header(first100[99]!, 'ratelimit')).toBe('"per-workload";r=0;t=60');

    const the101st = await server.client.check(openai(TEAM_A));
    expect(the101st.allowed).toBe(false);
    expect(the101st.httpStatus).toBe(429);
    expect(header(the101st, 'retry-after')).toBe('60');
    expect(header(the101st, 'ratelimit-policy')).toBe('"per-workload";q=100;w=60');
    expect(header(the101st, 'ratelimit')).toBe('"per-workload";r=0;t=60');
    expect(header(the101st, 'content-type')).toBe('application/json');
    const body = JSON.parse(the101st.body) as { error: string; reason: string };
    expect(body.error).toBe('rate_limited');
    expect(body.reason).toContain('"per-workload"');
    expect(body.reason).not.toContain('team-a'); // no identities in reasons

    now = T0 + 15_000;
    const later = await server.client.check(openai(TEAM_A));
    expect(later.httpStatus).toBe(429);
    expect(header(later, 'retry-after')).toBe('45');
    expect(header(later, 'ratelimit')).toBe('"per-workload";r=0;t=45');

    // Another ServiceAccount has its own budget.
    const teamB = await server.client.check(openai(TEAM_B));
    expect(teamB.allowed).toBe(true);
    expect(header(teamB, 'ratelimit')).toBe('"per-workload";r=99;t=60');

    now = T0 + 60_000 - 1;
    expect((await server.client.check(openai(TEAM_A))).httpStatus).toBe(429);

    // The window [T0, T0 + 60 s) is over: a new one opens with this request.
    now = T0 + 60_000;
    const afterWindow = await server.client.check(openai(TEAM_A));
    expect(afterWindow.allowed).toBe(true);
    expect(header(afterWindow, 'ratelimit')).toBe('"per-workload";r=99;t=60');
  });

  it('requests without an identity are refused by the identity stage and spend nothing', async () => {
    const anonymous = await server.client.check({ host: 'api.openai.com', path: '/v1/models' });
    expect(anonymous.httpStatus).toBe(401);
    const teamC = 'spiffe://cluster.local/ns/team-c/sa/client';
    expect(header(await server.client.check(openai(teamC)), 'ratelimit')).toBe('"per-workload";r=99;t=60');
  });
});

describe('the seed documents together: AuthPolicy (kubernetesTokenReview) + RateLimitPolicy + HTTPRoute, verbatim', () => {
  let kube: FakeKubeApiserver;
  let server: TestServer;
  let now = T0;

  beforeAll(async () => {
    kube = await startFakeKubeApiserver();
    server = await startTestServer({
      files: {
        'openai-access-control.yaml': seedPolicy('openai-access-control.yaml'),
        'openai-rate-limit.yaml': seedPolicy('openai-rate-limit.yaml'),
        'openai-external-httproute.yaml': seedPolicy('openai-external-httproute.yaml'),
      },
      // A generous deadline: the first TokenReview (TLS handshake to the fake API server) of a loaded test
      // machine must not turn into a 503; this test is about counting.
      config: { kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }), checkDeadlineMs: 2_000 },
    });
    await server.app.services.warm();
    rateLimiter(server.app.services).now = () => now;
  });
  afterAll(async () => {
    await server?.close();
    await kube?.close();
  });

  it('the 101st request of one ServiceAccount is 429, another ServiceAccount passes, after the window it passes again', async () => {
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const chatbot = openai('', { headers: bearer(kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' })) });
    const summarizer = openai('', { headers: bearer(kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'summarizer' })) });

    const first100 = await checkMany(server, chatbot, 100);
    expect(statuses(first100)).toEqual({ 200: 100 });
    expect(header(first100[99]!, 'ratelimit')).toBe('"per-workload";r=0;t=60');
    const the101st = await server.client.check(chatbot);
    expect(the101st.httpStatus).toBe(429);
    expect(header(the101st, 'retry-after')).toBe('60');
    expect(JSON.parse(the101st.body)).toMatchObject({ error: 'rate_limited' });

    // Refused by the AuthPolicy (another namespace): 403, and nothing is spent.
    const outsider = openai('', { headers: bearer(kube.issueToken({ namespace: 'default', serviceAccount: 'default' })) });
    expect((await server.client.check(outsider)).httpStatus).toBe(403);

    now = T0 + 30_000;
    const other = await server.client.check(summarizer);
    expect(other.allowed).toBe(true);
    expect(header(other, 'ratelimit')).toBe('"per-workload";r=99;t=60');
    expect((await server.client.check(chatbot)).httpStatus).toBe(429);

    now = T0 + 60_000;
    const afterWindow = await server.client.check(chatbot);
    expect(afterWindow.allowed).toBe(true);
    expect(header(afterWindow, 'ratelimit')).toBe('"per-workload";r=99;t=60');
  });
});

describe('Redis store', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(() => redis.close());

  // Generous deadlines (Redis command timeout = a third of it) where a test is about counting, so a loaded
  // machine cannot turn a slow answer into an uncounted pass; the paused-Redis test uses the real default.
  async function redisServer(files: Record<string, string>, checkDeadlineMs = 2_000): Promise<TestServer> {
    const server = await startTestServer({ files, config: { redisUrl: redis.url, checkDeadlineMs } });
    await redisStoreOf(server).waitUntilUp();
    return server;
  }

  it('two replicas sharing one redis-server: 300 requests of one identity at limit 100 → exactly 100 allowed', async () => {
    const replicaA = await redisServer(SEED_FILES);
    const replicaB = await redisServer(SEED_FILES);
    try {
      expect(rateLimiter(replicaA.app.services).store).not.toBe(rateLimiter(replicaB.app.services).store);
      const results: CheckResult[] = [];
      for (let batch = 0; batch < 30; batch++) {
        const round = await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? replicaA : replicaB).client.check(openai(TEAM_A))),
        );
        results.push(...round);
      }
      expect(statuses(results)).toEqual({ 200: 100, 429: 200 });
      // The other identity's budget is untouched on both replicas.
      expect(header(await replicaB.client.check(openai(TEAM_B)), 'ratelimit')).toBe('"per-workload";r=99;t=60');
      expect(await failureCount(replicaA, 'allow')).toBe(0);
      expect(await failureCount(replicaB, 'allow')).toBe(0);
    } finally {
      await replicaA.close();
      await replicaB.close();
    }
  });

  it('a short window timed by the Redis server: denied within it, allowed again after it', async () => {
    const server = await redisServer({
      'short.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: short-window}
spec:
  hosts: [api.example.com]
  authentication:
    mesh: {spiffe: {}}
  rateLimits:
    per-workload:
      rates: [{limit: 3, window: 2s}]
      counters: [auth.identity.username]
`,
    });
    try {
      const request = { host: 'api.example.com', principal: TEAM_A };
      expect(statuses(await checkMany(server, request, 3))).toEqual({ 200: 3 });
      const denied = await server.client.check(request);
      expect(denied.httpStatus).toBe(429);
      const retryAfter = Number(header(denied, 'retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(2);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const again = await server.client.check(request);
      expect(again.allowed).toBe(true);
      expect(header(again, 'ratelimit')).toBe('"per-workload";r=2;t=2');
    } finally {
      await server.close();
    }
  });

  it('all limits of a request are checked in ONE Redis round trip', async () => {
    const server = await redisServer({
      'two-limits.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: two-limits}
spec:
  hosts: [api.example.com]
  authentication:
    mesh: {spiffe: {}}
  rateLimits:
    per-workload:
      rates: [{limit: 100, window: 1m}, {limit: 10, window: 1s}]
      counters: [auth.identity.username]
    per-namespace:
      rates: [{limit: 1000, window: 1h}]
      counters: [auth.identity.namespace]
      cost: 2
`,
    });
    const admin = new Redis(redis.url);
    const scriptCalls = async (): Promise<number> => {
      const stats = await admin.info('commandstats');
      return [...stats.matchAll(/^cmdstat_(?:eval|evalsha):calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    try {
      const before = await scriptCalls();
      const results = await checkMany(server, { host: 'api.example.com', principal: TEAM_A }, 5);
      expect(statuses(results)).toEqual({ 200: 5 });
      expect(header(results[4]!, 'ratelimit')).toBe('"per-workload/1m";r=95;t=60, "per-workload/1s";r=5;t=1, "per-namespace";r=990;t=3600');
      expect((await scriptCalls()) - before).toBe(5);
    } finally {
      admin.disconnect();
      await server.close();
    }
  });

  it('Redis stopped: failureMode allow passes, deny answers 503, logged once; Redis back: counting resumes', async () => {
    const server = await redisServer({
      'modes.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: failure-modes}
spec:
  hosts: [api.example.com]
  authentication:
    mesh: {spiffe: {}}
  rateLimits:
    soft:
      when: request.path.startsWith("/soft")
      rates: [{limit: 5, window: 1m}]
      counters: [auth.identity.username]
    hard:
      when: request.path.startsWith("/hard")
      rates: [{limit: 5, window: 1m}]
      counters: [auth.identity.username]
      failureMode: deny
`,
    });
    const soft = { host: 'api.example.com', path: '/soft', principal: TEAM_A };
    const hard = { host: 'api.example.com', path: '/hard', principal: TEAM_A };
    const outageLines = (): string[] => server.logs.filter((line) => line.includes('rate-limit store unreachable'));
    try {
      expect(header(await server.client.check(soft), 'ratelimit')).toBe('"soft";r=4;t=60');
      expect(header(await server.client.check(hard), 'ratelimit')).toBe('"hard";r=4;t=60');

      await redis.stop();
      const store = redisStoreOf(server);
      await waitFor(() => store.currentState === 'down', 'the store to notice the outage');
      const softDuringOutage = await checkMany(server, soft, 5);
      const hardDuringOutage = await checkMany(server, hard, 5);
      expect(statuses(softDuringOutage)).toEqual({ 200: 5 });
      expect(header(softDuringOutage[0]!, 'ratelimit')).toBeUndefined(); // nothing was counted
      expect(statuses(hardDuringOutage)).toEqual({ 503: 5 });
      expect(JSON.parse(hardDuringOutage[0]!.body)).toMatchObject({ error: 'unavailable' });
      expect(hardDuringOutage[0]!.message).toContain('failureMode deny');
      expect(await failureCount(server, 'allow')).toBe(5);
      expect(await failureCount(server, 'deny')).toBe(5);
      expect(outageLines()).toHaveLength(1);
      expect(server.logs.join('\n')).not.toContain(redis.url);

      await redis.start();
      await store.waitUntilUp();
      // The restarted redis-server persisted nothing: fresh budgets, counted again.
      const hardAfter = await checkMany(server, hard, 6);
      expect(hardAfter.map((r) => r.httpStatus)).toEqual([200, 200, 200, 200, 200, 429]);
      expect(header(hardAfter[0]!, 'ratelimit')).toBe('"hard";r=4;t=60');
      expect(server.logs.filter((line) => line.includes('rate-limit store reachable'))).toHaveLength(2); // startup + recovery
      expect(outageLines()).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('a Redis that stops answering never holds a Check past its deadline', async () => {
    const server = await redisServer({
      'modes.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: paused}
spec:
  hosts: [api.example.com]
  authentication:
    mesh: {spiffe: {}}
  rateLimits:
    soft:
      when: request.path.startsWith("/soft")
      rates: [{limit: 5, window: 1m}]
      counters: [auth.identity.username]
    hard:
      when: request.path.startsWith("/hard")
      rates: [{limit: 5, window: 1m}]
      counters: [auth.identity.username]
      failureMode: deny
`,
    }, 150);
    try {
      await redis.pause();
      const soft = await server.client.check({ host: 'api.example.com', path: '/soft', principal: TEAM_A });
      const hard = await server.client.check({ host: 'api.example.com', path: '/hard', principal: TEAM_A });
      // Decided by the failure modes (not by the authorizer's generic deadline answer).
      expect(soft.allowed).toBe(true);
      expect(hard.httpStatus).toBe(503);
      expect(hard.message).toContain('rate-limit store unavailable (timeout)');
    } finally {
      await redis.resume();
      await server.close();
    }
  });
});
