// kubernetesTokenReview over real gRPC against the fake kube-apiserver: the identity object, caching rules,
// and the failure answers (401 / 503).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { structToJs } from '../../src/envoy/codec.js';
import { successTtlMs, TOKEN_REVIEW_DEFAULT_TTL_MS } from '../../src/identity/kubernetes-token-review.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { writeKubeconfig } from './support/kubeconfig.js';

const AUD = 'https://kubernetes.default.svc.cluster.local';

const POLICIES = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: review
spec:
  hosts: [review.example.com]
  authentication:
    sa:
      kubernetesTokenReview:
        audiences: ["${AUD}"]
  authorization:
    both-styles-agree: auth.identity.user.username == auth.identity.username
  response:
    success:
      headers:
        x-namespace: auth.identity.namespace
        x-service-account: auth.identity.serviceAccount
        x-pod: auth.identity.user.extra["authentication.kubernetes.io/pod-name"][0]
      dynamicMetadata:
        identity: auth.identity
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: review-vault-audience
spec:
  hosts: [vault-audience.example.com]
  authentication:
    sa:
      kubernetesTokenReview:
        audiences: [vault]
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: review-uncached
spec:
  hosts: [uncached.example.com]
  authentication:
    sa:
      cache:
        ttl: 0
      credentials:
        customHeader:
          name: x-workload-token
      kubernetesTokenReview:
        audiences: ["${AUD}"]
`;

let kube: FakeKubeApiserver;
let s: TestServer;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const header = (r: CheckResult, name: string) => r.headers.filter((h) => h.key === name).map((h) => h.value);

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  s = await startTestServer({
    files: { 'policies.yaml': POLICIES },
    config: { kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }), checkDeadlineMs: 1000 },
  });
  await s.app.services.warm();
});

afterAll(async () => {
  await s?.close();
  await kube?.close();
});

beforeEach(() => {
  kube.resetCounters();
  kube.setFailure('none');
  kube.setForbiddenReviewer(false);
});

describe('the identity object', () => {
  it('is the TokenReview status as Kubernetes returns it, plus username, namespace and serviceAccount', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', jti: 'a1b2' });
    const r = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    expect(r.httpStatus).toBe(200);
    const identity = structToJs(r.raw['dynamicMetadata'] as never)['identity'];
    expect(identity).toEqual({
      authenticated: true,
      user: {
        username: 'system:serviceaccount:ai-workloads:chatbot',
        uid: kube.serviceAccountUid('ai-workloads', 'chatbot'),
        groups: ['system:serviceaccounts', 'system:serviceaccounts:ai-workloads', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/credential-id': ['JTI=a1b2'],
          'authentication.kubernetes.io/node-name': ['kind-worker'],
          'authentication.kubernetes.io/node-uid': ['52c81fbd-d2e9-4c7a-b45f-89df2615076b'],
          'authentication.kubernetes.io/pod-name': ['chatbot-7d4b9c8f6-x2x9q'],
          'authentication.kubernetes.io/pod-uid': [expect.stringMatching(/^[0-9a-f-]{36}$/)],
        },
      },
      audiences: [AUD],
      username: 'system:serviceaccount:ai-workloads:chatbot',
      namespace: 'ai-workloads',
      serviceAccount: 'chatbot',
    });
    expect(header(r, 'x-namespace')).toEqual(['ai-workloads']);
    expect(header(r, 'x-service-account')).toEqual(['chatbot']);
    expect(header(r, 'x-pod')).toEqual(['chatbot-7d4b9c8f6-x2x9q']);
  });

  it('is served from the cache for later requests with the same token', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'cached' });
    for (let i = 0; i < 5; i++) expect((await s.client.check({ host: 'review.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    expect(kube.calls.tokenReviews).toBe(1);
    const hits = (await s.metrics.registry.getSingleMetric('egress_authz_cache_events_total')!.get()).values.find(
      (v) => v.labels['cache'] === 'tokenreview' && v.labels['event'] === 'hit',
    );
    expect(hits?.value).toBeGreaterThanOrEqual(4);
  });
});

describe('caching', () => {
  it('keeps a rejection briefly: a bad token is reviewed once for repeated requests', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', expiresInSeconds: -300 });
    const first = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    const second = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    expect([first.httpStatus, second.httpStatus]).toEqual([401, 401]);
    expect(kube.calls.tokenReviews).toBe(1);
  });

  it('keys verdicts by audience: one token, two policies, two reviews with their own answers', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    const a = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    const b = await s.client.check({ host: 'vault-audience.example.com', headers: bearer(token) });
    expect([a.httpStatus, b.httpStatus]).toEqual([200, 401]);
    expect(kube.calls.tokenReviews).toBe(2);
  });

  it('caches nothing with cache.ttl 0, and reads the token from a custom header', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    for (let i = 0; i < 3; i++) {
      expect((await s.client.check({ host: 'uncached.example.com', headers: { 'x-workload-token': token } })).httpStatus).toBe(200);
    }
    expect(kube.calls.tokenReviews).toBe(3);
    // The custom header is the only credential location: a bearer token there is "no credential".
    const none = await s.client.check({ host: 'uncached.example.com', headers: bearer(token) });
    expect(none.httpStatus).toBe(401);
    expect(header(none, 'www-authenticate')).toEqual(['Bearer realm="egress-authz"']);
  });

  it('bounds a success by the token expiry or the TTL, whichever is first', () => {
    const now = 1_700_000_000_000;
    expect(successTtlMs(TOKEN_REVIEW_DEFAULT_TTL_MS, now / 1000 + 30, now)).toBe(30_000);
    expect(successTtlMs(TOKEN_REVIEW_DEFAULT_TTL_MS, now / 1000 + 3600, now)).toBe(TOKEN_REVIEW_DEFAULT_TTL_MS);
    expect(successTtlMs(60_000, undefined, now)).toBe(60_000);
    expect(successTtlMs(60_000, now / 1000 - 5, now)).toBeLessThanOrEqual(0);
  });
});

describe('failures answer 503, fail closed', () => {
  it('when the reviewer may not create TokenReviews (403 from the API server)', async () => {
    kube.setForbiddenReviewer(true);
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'forbidden' });
    const r = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    expect(r.httpStatus).toBe(503);
    expect(JSON.parse(r.body).reason).toBe('identity backend unavailable (sa: TokenReview: HTTP 403 Forbidden)');
  });

  it('when the API server answers 500, and the failure is not cached', async () => {
    kube.setFailure('500');
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'flaky' });
    const r = await s.client.check({ host: 'review.example.com', headers: bearer(token) });
    expect(r.httpStatus).toBe(503);
    expect(JSON.parse(r.body).reason).toContain('HTTP 500 InternalError');
    kube.setFailure('none');
    expect((await s.client.check({ host: 'review.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    expect(kube.calls.tokenReviews).toBe(2);
  });

  it('when there is no Kubernetes API configured at all (no kubeconfig, not in a cluster)', async () => {
    const saved = process.env['KUBERNETES_SERVICE_HOST'];
    delete process.env['KUBERNETES_SERVICE_HOST'];
    const bare = await startTestServer({ files: { 'policies.yaml': POLICIES } });
    try {
      await bare.app.services.warm();
      const r = await bare.client.check({ host: 'review.example.com', headers: bearer(kube.issueToken({ namespace: 'a', serviceAccount: 'b' })) });
      expect(r.httpStatus).toBe(503);
      expect(JSON.parse(r.body).reason).toContain('no Kubernetes API configured');
    } finally {
      await bare.close();
      if (saved !== undefined) process.env['KUBERNETES_SERVICE_HOST'] = saved;
    }
  });
});

describe('a plain-HTTP API endpoint (kubectl proxy)', () => {
  it('reviews tokens through it when the kubeconfig allows insecure transport', async () => {
    // A stand-in for `kubectl proxy`: plain HTTP on loopback, forwarding to the API server over TLS.
    const proxy = http.createServer((req, res) => {
      const upstream = https.request(
        `${kube.url}${req.url}`,
        { method: req.method, headers: { ...req.headers, host: new URL(kube.url).host }, ca: kube.caPem },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as { port: number }).port;
    const kubeconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-proxy-')), 'kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: proxy, cluster: {server: "http://127.0.0.1:' + port + '", insecure-skip-tls-verify: true}}]',
        `users: [{name: u, user: {token: "${kube.reviewerToken}"}}]`,
        'contexts: [{name: c, context: {cluster: proxy, user: u}}]',
        'current-context: c',
      ].join('\n'),
    );
    const t = await startTestServer({ files: { 'policies.yaml': POLICIES }, config: { kubeconfig, checkDeadlineMs: 1000 } });
    try {
      await t.app.services.warm();
      const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'via-proxy' });
      const r = await t.client.check({ host: 'review.example.com', headers: bearer(token) });
      expect(r.httpStatus).toBe(200);
      expect(header(r, 'x-service-account')).toEqual(['via-proxy']);
    } finally {
      await t.close();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
