// Workload identity end to end: real gRPC Checks against a server whose policies authenticate callers through
// a fake kube-apiserver over HTTPS (TokenReview, JWKS), SPIFFE principals and API keys.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { seedPolicy, startTestServer, type TestServer } from '../support/test-server.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { writeKubeconfig } from '../identity/support/kubeconfig.js';

const AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const CHECK_DEADLINE_MS = 1000;

const SPIFFE_POLICY = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: spiffe-only
spec:
  hosts: [spiffe.example.com]
  authentication:
    mesh:
      spiffe:
        trustDomains: [cluster.local]
  authorization:
    ai-workloads-only: auth.identity.namespace == "ai-workloads"
`;

const JWT_KUBERNETES_POLICY = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: jwt-local
spec:
  hosts: [jwt.example.com]
  authentication:
    sa-token:
      jwt:
        kubernetes: true
        audiences: ["${AUDIENCE}"]
  authorization:
    ai-workloads-only: auth.identity.user.username.startsWith("system:serviceaccount:ai-workloads:")
  response:
    success:
      headers:
        x-workload: auth.identity.namespace + "/" + auth.identity.serviceAccount
`;

function apiKeyPolicies(keyFile: string): string {
  return `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: api-keys
spec:
  hosts: [apikey.example.com]
  authentication:
    partner-key:
      apiKey:
        file: ${keyFile}
      credentials:
        customHeader:
          name: x-api-key
  response:
    success:
      headers:
        x-caller: auth.identity.name
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: priority
spec:
  hosts: [priority.example.com]
  authentication:
    workload-token:
      priority: 1
      kubernetesTokenReview:
        audiences: ["${AUDIENCE}"]
    partner-key:
      priority: 0
      apiKey:
        file: ${keyFile}
      credentials:
        customHeader:
          name: x-api-key
  response:
    success:
      headers:
        x-authenticated-as: auth.identity.username
`;
}

let kube: FakeKubeApiserver;
let s: TestServer;

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function header(r: CheckResult, name: string): string[] {
  return r.headers.filter((h) => h.key.toLowerCase() === name).map((h) => h.value);
}

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-keys-'));
  const keyFile = path.join(keyDir, 'keys.yaml');
  fs.writeFileSync(keyFile, '- key: partner-key-1\n  name: partner-one\n  labels: {tier: gold}\n');
  s = await startTestServer({
    files: {
      // The seed documents exactly as users paste them.
      'openai-access-control.yaml': seedPolicy('openai-access-control.yaml'),
      'openai-external-httproute.yaml': seedPolicy('openai-external-httproute.yaml'),
      'spiffe.yaml': SPIFFE_POLICY,
      'jwt.yaml': JWT_KUBERNETES_POLICY,
      'api-keys.yaml': apiKeyPolicies(keyFile),
    },
    config: {
      kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }),
      // The fake API server, the gRPC client and the server share one event loop here (and the machine is
      // shared): a roomier deadline than production's 150 ms keeps cold-path tests about behaviour, not speed.
      checkDeadlineMs: CHECK_DEADLINE_MS,
    },
  });
  // The Kubernetes client library loads and the first key set is fetched right after the policies load.
  await s.app.services.warm();
});

afterAll(async () => {
  await s?.close();
  await kube?.close();
});

beforeEach(async () => {
  await kube.start();
  kube.resetCounters();
});

describe("the seed's access-control AuthPolicy, verbatim (kubernetesTokenReview)", () => {
  const host = 'api.openai.com';

  it('allows a ServiceAccount token from ai-workloads', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    const r = await s.client.check({ host, headers: bearer(token) });
    expect(r.httpStatus).toBe(200);
    expect(r.allowed).toBe(true);
    expect(kube.calls.tokenReviews).toBe(1);
  });

  it('answers 403 for a valid token from the default namespace', async () => {
    const token = kube.issueToken({ namespace: 'default', serviceAccount: 'default' });
    const r = await s.client.check({ host, headers: bearer(token) });
    expect(r.allowed).toBe(false);
    expect(r.httpStatus).toBe(403);
  });

  it('answers 401 with a Bearer challenge when there is no token', async () => {
    const r = await s.client.check({ host });
    expect(r.httpStatus).toBe(401);
    expect(header(r, 'www-authenticate')).toEqual(['Bearer realm="egress-authz"']);
    expect(kube.calls.tokenReviews).toBe(0);
  });

  it('answers 401 with error="invalid_token" for an expired token', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', expiresInSeconds: -300 });
    const r = await s.client.check({ host, headers: bearer(token) });
    expect(r.httpStatus).toBe(401);
    expect(header(r, 'www-authenticate')).toEqual(['Bearer realm="egress-authz", error="invalid_token"']);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'unauthenticated', reason: 'workload-sa: token expired' });
  });

  it('answers 401 for a token minted for another audience', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', audiences: ['vault'] });
    const r = await s.client.check({ host, headers: bearer(token) });
    expect(r.httpStatus).toBe(401);
    expect(JSON.parse(r.body).reason).toBe('workload-sa: token audience not accepted');
  });

  it('answers 503 (fail closed) when the API server is down', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    await kube.stop();
    const r = await s.client.check({ host, headers: bearer(token) });
    expect(r.allowed).toBe(false);
    expect(r.httpStatus).toBe(503);
    expect(JSON.parse(r.body).reason).toMatch(/^identity backend unavailable \(workload-sa: TokenReview: ECONNREFUSED\)$/);
    // A backend failure is not cached: once the API server is back, the same token passes.
    await kube.start();
    const again = await s.client.check({ host, headers: bearer(token) });
    expect(again.httpStatus).toBe(200);
  });

  it('answers 503 within the deadline when the API server is too slow', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    kube.setLatencyMs(CHECK_DEADLINE_MS * 3);
    try {
      const r = await s.client.check({ host, headers: bearer(token) });
      expect(r.httpStatus).toBe(503);
      expect(JSON.parse(r.body).reason).toContain('TokenReview did not answer within the deadline');
    } finally {
      kube.setLatencyMs(0);
    }
  });

  it("answers 503 before Envoy's own timeout (grpc-timeout) when that is shorter than the Check deadline", async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    kube.setLatencyMs(CHECK_DEADLINE_MS * 3);
    try {
      const started = Date.now();
      // The client's deadline travels as grpc-timeout; a 503 after it would be lost (Envoy answers by itself).
      const r = await s.client.check({ host, headers: bearer(token) }, 600);
      expect(Date.now() - started).toBeLessThan(600);
      expect(r.httpStatus).toBe(503);
      expect(JSON.parse(r.body).reason).toContain('TokenReview did not answer within the deadline');
    } finally {
      kube.setLatencyMs(0);
    }
  });

  it('makes exactly one TokenReview for 100 concurrent requests with one new token', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'batch' });
    const results = await Promise.all(Array.from({ length: 100 }, () => s.client.check({ host, headers: bearer(token) })));
    expect(results.map((r) => (r.httpStatus === 200 ? 200 : r.body))).toEqual(Array(100).fill(200));
    expect(kube.calls.tokenReviews).toBe(1);
    // And later requests with it are answered from the cache.
    await s.client.check({ host, headers: bearer(token) });
    expect(kube.calls.tokenReviews).toBe(1);
  });

  it('never writes a token into a log line', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'secretive' });
    await s.client.check({ host, headers: bearer(token) });
    const signature = token.split('.')[2]!;
    expect(s.logs.some((l) => l.includes(signature))).toBe(false);
    expect(s.logs.some((l) => l.includes(kube.reviewerToken.split('.')[2]!))).toBe(false);
  });
});

describe('SPIFFE principal policy', () => {
  const host = 'spiffe.example.com';

  it('passes the allowed namespace with no token at all', async () => {
    const r = await s.client.check({ host, principal: 'spiffe://cluster.local/ns/ai-workloads/sa/chatbot' });
    expect(r.httpStatus).toBe(200);
    expect(kube.calls.tokenReviews).toBe(0);
  });

  it('answers 403 for another namespace', async () => {
    const r = await s.client.check({ host, principal: 'spiffe://cluster.local/ns/default/sa/default' });
    expect(r.httpStatus).toBe(403);
  });

  it('answers 401 for a trust domain that is not allowed', async () => {
    const r = await s.client.check({ host, principal: 'spiffe://evil.example/ns/ai-workloads/sa/chatbot' });
    expect(r.httpStatus).toBe(401);
  });
});

describe('jwt in Kubernetes mode', () => {
  const host = 'jwt.example.com';

  it('verifies ServiceAccount tokens locally: zero TokenReview calls', async () => {
    const rs = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    const es = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'indexer', alg: 'ES256' });
    const r1 = await s.client.check({ host, headers: bearer(rs) });
    const r2 = await s.client.check({ host, headers: bearer(es) });
    expect([r1.httpStatus, r2.httpStatus]).toEqual([200, 200]);
    expect(header(r1, 'x-workload')).toEqual(['ai-workloads/chatbot']);
    expect(header(r2, 'x-workload')).toEqual(['ai-workloads/indexer']);
    const denied = await s.client.check({ host, headers: bearer(kube.issueToken({ namespace: 'default', serviceAccount: 'default' })) });
    expect(denied.httpStatus).toBe(403);
    expect(kube.calls.tokenReviews).toBe(0);
    expect(kube.calls.jwks).toBe(0);
  });

  it('rejects expired and wrong-audience tokens with 401', async () => {
    const expired = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', expiresInSeconds: -300 });
    const otherAudience = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', audiences: ['vault'] });
    const r1 = await s.client.check({ host, headers: bearer(expired) });
    const r2 = await s.client.check({ host, headers: bearer(otherAudience) });
    expect([r1.httpStatus, r2.httpStatus]).toEqual([401, 401]);
    expect(JSON.parse(r1.body).reason).toBe('sa-token: token expired');
    expect(JSON.parse(r2.body).reason).toBe('sa-token: token audience not accepted');
  });

  it('refreshes the key set once when a token names an unknown key id (rotation)', async () => {
    kube.rotateKeys();
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    const results = await Promise.all(Array.from({ length: 20 }, () => s.client.check({ host, headers: bearer(token) })));
    expect(results.map((r) => r.httpStatus)).toEqual(Array(20).fill(200));
    expect(kube.calls.jwks).toBe(1);
    expect(kube.calls.tokenReviews).toBe(0);
  });
});

describe('apiKey and priority order', () => {
  it('accepts a known API key and names its owner', async () => {
    const r = await s.client.check({ host: 'apikey.example.com', headers: { 'x-api-key': 'partner-key-1' } });
    expect(r.httpStatus).toBe(200);
    expect(header(r, 'x-caller')).toEqual(['partner-one']);
  });

  it('rejects an unknown API key with 401 and an APIKEY challenge', async () => {
    const r = await s.client.check({ host: 'apikey.example.com', headers: { 'x-api-key': 'partner-key-2' } });
    expect(r.httpStatus).toBe(401);
    expect(header(r, 'www-authenticate')).toEqual(['APIKEY realm="egress-authz", error="invalid_token"']);
    expect(s.logs.some((l) => l.includes('partner-key-2'))).toBe(false);
  });

  it('tries methods by priority: the API key (priority 0) wins over the token (priority 1)', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    const both = await s.client.check({ host: 'priority.example.com', headers: { ...bearer(token), 'x-api-key': 'partner-key-1' } });
    expect(header(both, 'x-authenticated-as')).toEqual(['partner-one']);
    expect(kube.calls.tokenReviews).toBe(0);
    const tokenOnly = await s.client.check({ host: 'priority.example.com', headers: bearer(token) });
    expect(header(tokenOnly, 'x-authenticated-as')).toEqual(['system:serviceaccount:ai-workloads:chatbot']);
    expect(kube.calls.tokenReviews).toBe(1);
  });

  it('answers 401 with both challenges when neither credential is given', async () => {
    const r = await s.client.check({ host: 'priority.example.com' });
    expect(r.httpStatus).toBe(401);
    expect(header(r, 'www-authenticate').sort()).toEqual(['APIKEY realm="egress-authz"', 'Bearer realm="egress-authz"']);
  });
});
