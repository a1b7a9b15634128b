// The rate-limit stage in the request path (real gRPC, memory store, clock moved by the test).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CheckRequestInput, CheckResult } from '../../src/cli/check-client.js';
import { rateLimiter } from '../../src/ratelimit/limiter.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const T0 = 1_700_000_000_000;
const TEAM_A = 'spiffe://cluster.local/ns/team-a/sa/client';
const TEAM_B = 'spiffe://cluster.local/ns/team-b/sa/client';

function policy(name: string, host: string, body: string, extra = ''): string {
  return `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: ${name}}
spec:
  hosts: [${host}]
${extra}  authentication:
    mesh: {spiffe: {}}
  rateLimits:
${body.replace(/^/gm, '    ')}
---
`;
}

const FILES = {
  'policies.yaml': [
    policy(
      'authorized-only',
      'authz.example.com',
      `per-workload:
  rates: [{limit: 2, window: 1m}]
  counters: [auth.identity.username]`,
      `  authorization:
    get-only: request.method == "GET"
`,
    ),
    policy('host-a', 'a.example.com', `per-workload:\n  rates: [{limit: 1, window: 1m}]\n  counters: [auth.identity.username]`),
    policy('host-b', 'b.example.com', `per-workload:\n  rates: [{limit: 1, window: 1m}]\n  counters: [auth.identity.username]`),
    policy(
      'burst',
      'burst.example.com',
      `per-workload:
  rates: [{limit: 2, window: 1s}, {limit: 5, window: 1m}]
  counters: [auth.identity.username]`,
    ),
    policy(
      'tokens',
      'tokens.example.com',
      `tokens:
  rates: [{limit: 10, window: 1m}]
  counters: [auth.identity.username]
  cost: int(request.headers[?"x-cost"].orValue("1"))
requests:
  rates: [{limit: 100, window: 1m}]
  counters: [auth.identity.username]
  when: request.method == "POST"`,
    ),
    policy('blocked', 'blocked.example.com', `nothing:\n  rates: [{limit: 0, window: 1h}]`),
    `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: no-identity}
spec:
  hosts: [strict.example.com]
  rateLimits:
    per-workload:
      rates: [{limit: 1, window: 1m}]
      counters: [auth.identity.username]
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: no-identity-ignored}
spec:
  hosts: [lenient.example.com]
  failurePolicy: Ignore
  rateLimits:
    per-workload:
      rates: [{limit: 1, window: 1m}]
      counters: [auth.identity.username]
`,
  ].join(''),
};

let server: TestServer;
let now = T0;

function header(result: CheckResult, name: string): string | undefined {
  const list = result.allowed ? result.responseHeadersToAdd : result.headers;
  return list.find((h) => h.key === name)?.value;
}

async function statuses(request: CheckRequestInput, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push((await server.client.check(request)).httpStatus);
  return out;
}

beforeAll(async () => {
  server = await startTestServer({ files: FILES });
  rateLimiter(server.app.services).now = () => now;
});
afterAll(() => server.close());
// Every test starts in a fresh window for every budget.
let testIndex = 0;
beforeEach(() => {
  now = T0 + ++testIndex * 3_600_000;
});

describe('rate-limit stage', () => {
  it('runs after authorization: requests authorization denies spend nothing', async () => {
    expect(await statuses({ host: 'authz.example.com', method: 'POST', principal: TEAM_A }, 5)).toEqual([403, 403, 403, 403, 403]);
    expect(await statuses({ host: 'authz.example.com', method: 'GET', principal: TEAM_A }, 3)).toEqual([200, 200, 429]);
  });

  it('the remaining budget reaches the workload as appended RateLimit response headers', async () => {
    const allowed = await server.client.check({ host: 'authz.example.com', principal: TEAM_A });
    expect(allowed.responseHeadersToAdd).toEqual([
      { key: 'ratelimit-policy', value: '"per-workload";q=2;w=60', appendAction: 'APPEND_IF_EXISTS_OR_ADD', append: true },
      { key: 'ratelimit', value: '"per-workload";r=1;t=60', appendAction: 'APPEND_IF_EXISTS_OR_ADD', append: true },
    ]);
  });

  it('two policies never share a budget, even with the same limit name and counter', async () => {
    expect(await statuses({ host: 'a.example.com', principal: TEAM_A }, 2)).toEqual([200, 429]);
    expect(await statuses({ host: 'b.example.com', principal: TEAM_A }, 2)).toEqual([200, 429]);
    expect(await statuses({ host: 'a.example.com', principal: TEAM_B }, 1)).toEqual([200]);
  });

  it('a policy reload keeps the counters', async () => {
    expect(await statuses({ host: 'a.example.com', principal: TEAM_A }, 1)).toEqual([200]);
    server.writePolicy('extra.yaml', policy('extra', 'c.example.com', `l:\n  rates: [{limit: 1, window: 1m}]`));
    expect(server.app.reload().ok).toBe(true);
    expect(await statuses({ host: 'a.example.com', principal: TEAM_A }, 1)).toEqual([429]);
  });

  it('several rates of one limit are charged together; Retry-After names the window that ends last', async () => {
    const burst = { host: 'burst.example.com', principal: TEAM_A };
    const first = await server.client.check(burst);
    expect(header(first, 'ratelimit-policy')).toBe('"per-workload/1s";q=2;w=1, "per-workload/1m";q=5;w=60');
    expect(header(first, 'ratelimit')).toBe('"per-workload/1s";r=1;t=1, "per-workload/1m";r=4;t=60');
    expect((await server.client.check(burst)).allowed).toBe(true);

    const overBurst = await server.client.check(burst);
    expect(overBurst.httpStatus).toBe(429);
    expect(header(overBurst, 'retry-after')).toBe('1');
    expect(JSON.parse(overBurst.body)).toEqual({ error: 'rate_limited', reason: 'rate limit "per-workload" exceeded (2 per 1s); retry in 1 s' });
    // The denied request did not spend on the minute rate either.
    expect(header(overBurst, 'ratelimit')).toBe('"per-workload/1s";r=0;t=1, "per-workload/1m";r=3;t=60');

    now += 1_000;
    expect(await statuses(burst, 3)).toEqual([200, 200, 429]);
    now += 1_000;
    expect(await statuses(burst, 1)).toEqual([200]);
    // 5 spent in the minute window: the next request is over both rates; the minute decides Retry-After.
    now += 1_000;
    const overBoth = await server.client.check(burst);
    expect(overBoth.httpStatus).toBe(429);
    expect(header(overBoth, 'retry-after')).toBe('57');
    expect(overBoth.message).toBe('rate limit "per-workload" exceeded (5 per 1m); retry in 57 s');
  });

  it('cost: a CEL int per request; 0 does not count; limits with different costs are checked in one step', async () => {
    const tokens = (cost: number, method = 'GET') => ({ host: 'tokens.example.com', method, principal: TEAM_A, headers: { 'x-cost': String(cost) } });
    expect(header(await server.client.check(tokens(4)), 'ratelimit')).toBe('"tokens";r=6;t=60');
    expect(header(await server.client.check(tokens(4, 'POST')), 'ratelimit')).toBe('"tokens";r=2;t=60, "requests";r=99;t=60');
    const tooExpensive = await server.client.check(tokens(3, 'POST'));
    expect(tooExpensive.httpStatus).toBe(429);
    expect(header(tooExpensive, 'ratelimit')).toBe('"tokens";r=2;t=60, "requests";r=99;t=60');
    const free = await server.client.check(tokens(0));
    expect(free.allowed).toBe(true);
    expect(header(free, 'ratelimit')).toBeUndefined();
    expect(header(await server.client.check(tokens(2)), 'ratelimit')).toBe('"tokens";r=0;t=60');
  });

  it('a cost that is not a usable integer fails closed like any CEL error', async () => {
    const bad = await server.client.check({ host: 'tokens.example.com', principal: TEAM_A, headers: { 'x-cost': '-1' } });
    expect(bad.httpStatus).toBe(403);
    expect(bad.message).toBe('rate limit "tokens" could not be evaluated: cost must be an integer from 0 to 1000000000, got -1');
  });

  it('a limit of 0 refuses everything', async () => {
    const refused = await server.client.check({ host: 'blocked.example.com', principal: TEAM_A });
    expect(refused.httpStatus).toBe(429);
    expect(header(refused, 'retry-after')).toBe('3600');
  });

  it('a counter that cannot be evaluated (no identity) denies 403 under failurePolicy Fail', async () => {
    const strict = await server.client.check({ host: 'strict.example.com' });
    expect(strict.httpStatus).toBe(403);
    expect(strict.message).toMatch(/^rate limit "per-workload" could not be evaluated: /);
    expect(JSON.parse(strict.body)).toMatchObject({ error: 'forbidden' });
    const errors = await server.metrics.evaluatorErrors.get();
    expect(errors.values.find((v) => v.labels.evaluator === 'ratelimit')?.value).toBeGreaterThan(0);
  });

  it('... and skips the limit, uncounted, under failurePolicy Ignore', async () => {
    const results = await Promise.all([1, 2, 3].map(() => server.client.check({ host: 'lenient.example.com' })));
    expect(results.map((r) => r.httpStatus)).toEqual([200, 200, 200]);
    expect(header(results[0]!, 'ratelimit')).toBeUndefined();
  });
});
