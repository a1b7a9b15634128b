// How documents for one host compose: each document's `when` gates only its own part.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, seedPolicy, type TestServer } from '../support/test-server.js';

const AUTH = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: openai-auth
  namespace: gateway-system
spec:
  hosts: [api.openai.com]
  authentication:
    mesh:
      spiffe: {}
  authorization:
    team-a-only: auth.identity.namespace == "team-a"
`;

const RLP_WHEN_FALSE = `
apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata:
  name: only-posts
  namespace: gateway-system
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: openai-external
  limits:
    posts:
      rates:
        - limit: 1
          window: 1m
      counters:
        - expression: auth.identity.username
      when:
        - predicate: request.method == "POST"
  when:
    - predicate: request.method == "POST"
`;

describe('composition of an authorizing document and a rate-limiting document', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({
      files: { 'auth.yaml': AUTH, 'rlp.yaml': RLP_WHEN_FALSE, 'route.yaml': seedPolicy('openai-external-httproute.yaml') },
    });
  });
  afterAll(() => s.close());

  it("a RateLimitPolicy whose `when` is false does not switch off the other document's authorization", async () => {
    const other = await s.client.check({ host: 'api.openai.com', principal: 'spiffe://cluster.local/ns/team-b/sa/default' });
    expect(other.httpStatus).toBe(403);
    const none = await s.client.check({ host: 'api.openai.com' });
    expect(none.httpStatus).toBe(401);
    const ok = await s.client.check({ host: 'api.openai.com', principal: 'spiffe://cluster.local/ns/team-a/sa/default' });
    expect(ok.allowed).toBe(true);
  });

  it('the rate limit applies when its own `when` holds', async () => {
    const p = 'spiffe://cluster.local/ns/team-a/sa/poster';
    const first = await s.client.check({ host: 'api.openai.com', method: 'POST', principal: p });
    expect(first.allowed).toBe(true);
    const second = await s.client.check({ host: 'api.openai.com', method: 'POST', principal: p });
    expect(second.httpStatus).toBe(429);
    const get = await s.client.check({ host: 'api.openai.com', method: 'GET', principal: p });
    expect(get.allowed).toBe(true);
  });

  it('rejects two authorizing documents for one host', async () => {
    await expect(
      startTestServer({ files: { 'a.yaml': AUTH, 'b.yaml': AUTH.replace('name: openai-auth', 'name: openai-auth-2') } }),
    ).rejects.toThrow(/conflict: host api.openai.com/);
  });
});

describe('failure handling across composed documents', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({
      files: {
        'auth.yaml': AUTH,
        // A rate-limiting document for the same host, lenient about its own errors.
        'rl.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: openai-limits
spec:
  hosts: [api.openai.com]
  failurePolicy: Ignore
  variables:
    - name: tier
      expression: request.headers["x-tier"]
  rateLimits:
    per-tier:
      rates: [{limit: 1000, window: 1m}]
      counters: [variables.tier]
`,
        'kyverno.yaml': `
apiVersion: envoy.kyverno.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: scoped
  annotations:
    egress-authz.dev/hosts: kyverno.example.com
spec:
  matchConditions:
    - name: get-only
      expression: object.attributes.request.http.method == "GET"
  authorizations:
    - expression: envoy.Allowed().Response()
`,
        'kyverno-rl.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: kyverno-limits
spec:
  hosts: [kyverno.example.com]
  rateLimits:
    all:
      rates: [{limit: 1000, window: 1m}]
      counters: ['"all"']
`,
      },
    });
  });
  afterAll(() => s?.close());

  it("one document's failurePolicy Ignore never allows the host's other documents away", async () => {
    // The variable fails (no x-tier header); the rate-limit document ignores that, the identity and
    // authorization of the other document still apply.
    expect((await s.client.check({ host: 'api.openai.com' })).httpStatus).toBe(401);
    expect((await s.client.check({ host: 'api.openai.com', principal: 'spiffe://cluster.local/ns/team-b/sa/x' })).httpStatus).toBe(403);
    expect((await s.client.check({ host: 'api.openai.com', principal: 'spiffe://cluster.local/ns/team-a/sa/x' })).allowed).toBe(true);
  });

  it('a Kyverno part whose matchConditions do not hold is a deny, even composed with a rate-limit document', async () => {
    expect((await s.client.check({ host: 'kyverno.example.com' })).allowed).toBe(true);
    const post = await s.client.check({ host: 'kyverno.example.com', method: 'POST' });
    expect(post.httpStatus).toBe(403);
    expect(JSON.parse(post.body).reason).toContain('does not apply');
  });
});

describe('context-extension names', () => {
  it('a bare name two namespaces share selects neither; namespace/name selects one', async () => {
    const doc = (ns: string, method: string) => `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: shared, namespace: ${ns}}
spec:
  authorization:
    method: request.method == "${method}"
`;
    const s = await startTestServer({ files: { 'a.yaml': doc('a', 'GET'), 'b.yaml': doc('b', 'POST') } });
    try {
      const bare = await s.client.check({ host: 'x.example', contextExtensions: { policy: 'shared' } });
      expect(bare.httpStatus).toBe(403);
      expect(JSON.parse(bare.body).reason).toContain('ambiguous');
      expect((await s.client.check({ host: 'x.example', contextExtensions: { policy: 'a/shared' } })).allowed).toBe(true);
      expect((await s.client.check({ host: 'x.example', method: 'POST', contextExtensions: { policy: 'b/shared' } })).allowed).toBe(true);
    } finally {
      await s.close();
    }
  });
});
