// jwt over real gRPC: an OIDC issuer found by discovery (issuerUrl), a fixed jwksUrl, and Kubernetes mode
// against the fake kube-apiserver; claim checks, key rotation, and what happens when keys cannot be had.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT } from 'jose';
import { structToJs } from '../../src/envoy/codec.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Services } from '../../src/pipeline/services.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { makePolicyDir, startTestServer, type TestServer } from '../support/test-server.js';
import { writeKubeconfig } from './support/kubeconfig.js';
import { startOidcIssuer, type OidcIssuer } from './support/oidc-issuer.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const identityOf = (r: CheckResult) => structToJs(r.raw['dynamicMetadata'] as never)['identity'] as Record<string, unknown>;
const reason = (r: CheckResult) => (JSON.parse(r.body) as { reason: string }).reason;
const now = () => Math.floor(Date.now() / 1000);

function policy(name: string, host: string, jwt: string): string {
  return `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: ${name}
spec:
  hosts: [${host}]
  authentication:
    token:
      jwt:
${jwt
  .trim()
  .split('\n')
  .map((l) => `        ${l}`)
  .join('\n')}
  response:
    success:
      dynamicMetadata:
        identity: auth.identity
---
`;
}

describe('issuerUrl (OIDC discovery)', () => {
  let issuer: OidcIssuer;
  let s: TestServer;

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    s = await startTestServer({
      files: {
        'p.yaml':
          policy('oidc', 'oidc.example.com', `issuerUrl: ${issuer.url}\naudiences: [egress]`) +
          policy('fixed-keys', 'fixed.example.com', `jwksUrl: ${issuer.url}/jwks\nissuer: ${issuer.url}\nclockSkewSeconds: 0`),
      },
      config: { checkDeadlineMs: 1000 },
    });
    await s.app.services.warm();
  });
  afterAll(async () => {
    await s?.close();
    await issuer?.stop();
  });

  it('fetched discovery and the key set once, right after the policies loaded', () => {
    expect(issuer.calls.discovery).toBe(1);
    expect(issuer.calls.jwks).toBe(2); // one per key source: issuerUrl and jwksUrl
  });

  it('accepts RS256 and ES256 tokens and exposes their claims as the identity', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const token = await issuer.sign({ sub: 'svc-a', aud: 'egress', team: 'search' }, { alg });
      const r = await s.client.check({ host: 'oidc.example.com', headers: bearer(token) });
      expect(r.httpStatus).toBe(200);
      expect(identityOf(r)).toMatchObject({ sub: 'svc-a', aud: 'egress', team: 'search', iss: issuer.url });
    }
  });

  it.each([
    ['another issuer', { sub: 'x', aud: 'egress', iss: 'https://evil.example' }, 'token issuer not accepted'],
    ['another audience', { sub: 'x', aud: 'other' }, 'token audience not accepted'],
    ['an expiry beyond the skew', { sub: 'x', aud: 'egress', exp: now() - 120 }, 'token expired'],
    ['a not-before in the future', { sub: 'x', aud: 'egress', nbf: now() + 600 }, 'token not valid yet'],
    ['an issued-at in the future', { sub: 'x', aud: 'egress', iat: now() + 600 }, 'token issued in the future'],
  ])('rejects a token with %s (401 invalid_token)', async (_what, claims, why) => {
    const r = await s.client.check({ host: 'oidc.example.com', headers: bearer(await issuer.sign(claims)) });
    expect(r.httpStatus).toBe(401);
    expect(reason(r)).toBe(`token: ${why}`);
    expect(r.headers.find((h) => h.key === 'www-authenticate')?.value).toBe('Bearer realm="egress-authz", error="invalid_token"');
  });

  it('tolerates a small clock skew on exp (30 s by default), and none when set to 0', async () => {
    const justExpired = await issuer.sign({ sub: 'x', aud: 'egress', exp: now() - 10 });
    expect((await s.client.check({ host: 'oidc.example.com', headers: bearer(justExpired) })).httpStatus).toBe(200);
    expect((await s.client.check({ host: 'fixed.example.com', headers: bearer(justExpired) })).httpStatus).toBe(401);
  });

  it('rejects a token without exp, a shared-secret (HS256) token, an unsigned token and a non-JWT', async () => {
    const noExp = await new SignJWT({ sub: 'x', aud: 'egress', iss: issuer.url }).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));
    const unsigned = new UnsecuredJWT({ sub: 'x', aud: 'egress', iss: issuer.url, exp: now() + 60 }).encode();
    for (const [token, why] of [
      [noExp, 'token algorithm not allowed'],
      [unsigned, 'token algorithm not allowed'],
      ['opaque-api-key', 'not a JWT'],
    ] as const) {
      const r = await s.client.check({ host: 'oidc.example.com', headers: bearer(token) });
      expect(r.httpStatus).toBe(401);
      expect(reason(r)).toBe(`token: ${why}`);
    }
  });

  it('refreshes keys once on an unknown kid, then rate-limits further unknown-kid refreshes', async () => {
    const before = issuer.calls.jwks;
    await issuer.rotate('ES256');
    const rotated = await issuer.sign({ sub: 'x', aud: 'egress' }, { alg: 'ES256' });
    const results = await Promise.all(Array.from({ length: 10 }, () => s.client.check({ host: 'oidc.example.com', headers: bearer(rotated) })));
    expect(results.map((r) => r.httpStatus)).toEqual(Array(10).fill(200));
    expect(issuer.calls.jwks).toBe(before + 1);

    // A kid that is never published: within the cooldown it costs no fetch and is a plain 401.
    const forged = await issuer.sign({ sub: 'x', aud: 'egress' }, { kid: await issuer.unpublishedKey('RS256') });
    const r = await s.client.check({ host: 'oidc.example.com', headers: bearer(forged) });
    expect(r.httpStatus).toBe(401);
    expect(reason(r)).toBe('token: token signed by an unknown key');
    expect(issuer.calls.jwks).toBe(before + 1);
  });

  it('keeps verifying with the keys it has when the issuer goes away', async () => {
    const token = await issuer.sign({ sub: 'x', aud: 'egress' });
    await issuer.stop();
    expect((await s.client.check({ host: 'oidc.example.com', headers: bearer(token) })).httpStatus).toBe(200);
  });
});

describe('jwksUrl over HTTPS with a private CA (caFile beside the policy)', () => {
  it('verifies tokens with keys fetched from a server only that CA vouches for', async () => {
    const kube = await startFakeKubeApiserver();
    const s = await startTestServer({
      files: {
        'ca/cluster-ca.pem': kube.caPem,
        'p.yaml': policy('private-ca', 'ca.example.com', `jwksUrl: ${kube.url}/openid/v1/jwks\nissuer: ${kube.issuer}\ncaFile: ca/cluster-ca.pem\naudiences: [egress]`),
      },
      config: { checkDeadlineMs: 1000 },
    });
    try {
      await s.app.services.warm();
      expect(kube.calls.jwks).toBe(1);
      const token = kube.issueToken({ namespace: 'a', serviceAccount: 'b', audiences: ['egress'] });
      const r = await s.client.check({ host: 'ca.example.com', headers: bearer(token) });
      expect(r.httpStatus).toBe(200);
      expect(identityOf(r)['namespace']).toBe('a');
    } finally {
      await s.close();
      await kube.close();
    }
  });

  it('answers 503 when the server is not vouched for by the trusted roots', async () => {
    const kube = await startFakeKubeApiserver();
    const s = await startTestServer({
      files: { 'p.yaml': policy('no-ca', 'noca.example.com', `jwksUrl: ${kube.url}/openid/v1/jwks\nissuer: ${kube.issuer}`) },
      config: { checkDeadlineMs: 1000 },
    });
    try {
      await s.app.services.warm();
      const r = await s.client.check({ host: 'noca.example.com', headers: bearer(kube.issueToken({ namespace: 'a', serviceAccount: 'b' })) });
      expect(r.httpStatus).toBe(503);
      expect(kube.calls.jwks).toBe(0);
    } finally {
      await s.close();
      await kube.close();
    }
  });
});

describe('keys that cannot be had', () => {
  it('answers 503 when the key set never loaded (issuer down from the start)', async () => {
    const issuer = await startOidcIssuer();
    const url = issuer.url;
    await issuer.stop();
    const s = await startTestServer({ files: { 'p.yaml': policy('down', 'down.example.com', `jwksUrl: ${url}/jwks\nissuer: ${url}`) } });
    try {
      await s.app.services.warm();
      const r = await s.client.check({ host: 'down.example.com', headers: bearer('a.b.c') });
      expect(r.httpStatus).toBe(503);
      expect(reason(r)).toMatch(/^identity backend unavailable \(token: keys from .* unavailable: GET 127\.0\.0\.1:\d+\/jwks: ECONNREFUSED\)$/);
    } finally {
      await s.close();
    }
  });
});

describe('Kubernetes mode', () => {
  let kube: FakeKubeApiserver;
  let s: TestServer;
  const AUD = 'https://kubernetes.default.svc.cluster.local';

  beforeAll(async () => {
    // A cluster where discovery and JWKS need authentication: the client's credentials are sent.
    kube = await startFakeKubeApiserver({ discoveryRequiresAuth: true });
    s = await startTestServer({
      files: {
        'p.yaml': policy('k8s', 'k8s.example.com', 'kubernetes: true') + policy('k8s-vault', 'vault.example.com', 'kubernetes: true\naudiences: [vault]'),
      },
      config: { kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }), checkDeadlineMs: 1000 },
    });
    await s.app.services.warm();
  });
  afterAll(async () => {
    await s?.close();
    await kube?.close();
  });
  beforeEach(() => kube.resetCounters());

  it('verifies a ServiceAccount token locally and shapes the identity like TokenReview', async () => {
    const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot', jti: 'j-1', alg: 'ES256' });
    const r = await s.client.check({ host: 'k8s.example.com', headers: bearer(token) });
    expect(r.httpStatus).toBe(200);
    const identity = identityOf(r);
    expect(identity).toMatchObject({
      sub: 'system:serviceaccount:ai-workloads:chatbot',
      iss: AUD,
      aud: [AUD],
      'kubernetes.io': { namespace: 'ai-workloads', serviceaccount: { name: 'chatbot' } },
      username: 'system:serviceaccount:ai-workloads:chatbot',
      namespace: 'ai-workloads',
      serviceAccount: 'chatbot',
      pod: 'chatbot-7d4b9c8f6-x2x9q',
      user: {
        username: 'system:serviceaccount:ai-workloads:chatbot',
        uid: kube.serviceAccountUid('ai-workloads', 'chatbot'),
        groups: ['system:serviceaccounts', 'system:serviceaccounts:ai-workloads', 'system:authenticated'],
        extra: expect.objectContaining({ 'authentication.kubernetes.io/credential-id': ['JTI=j-1'] }),
      },
    });
    expect(kube.calls).toEqual({ tokenReviews: 0, jwks: 0, discovery: 0 });
  });

  it('defaults the audience to the API server issuer, and honours configured audiences', async () => {
    const vaultToken = kube.issueToken({ namespace: 'a', serviceAccount: 'b', audiences: ['vault'] });
    expect((await s.client.check({ host: 'k8s.example.com', headers: bearer(vaultToken) })).httpStatus).toBe(401);
    expect((await s.client.check({ host: 'vault.example.com', headers: bearer(vaultToken) })).httpStatus).toBe(200);
  });

  it('rejects a token from a foreign issuer even when signed with a published key', async () => {
    const foreign = kube.issueToken({ namespace: 'a', serviceAccount: 'b', issuer: 'https://other-cluster.example' });
    const r = await s.client.check({ host: 'k8s.example.com', headers: bearer(foreign) });
    expect(r.httpStatus).toBe(401);
    expect(reason(r)).toBe('token: token issuer not accepted');
  });

  it('remembers a verified token: the same token again is answered without verifying it', async () => {
    const token = kube.issueToken({ namespace: 'a', serviceAccount: 'cached' });
    expect((await s.client.check({ host: 'k8s.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    const hits = s.metrics.cacheEvents.labels('jwt', 'hit').value;
    expect((await s.client.check({ host: 'k8s.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    expect(s.metrics.cacheEvents.labels('jwt', 'hit').value).toBe(hits + 1);
  });

  it('picks up rotated keys with one refresh, still without TokenReview', async () => {
    kube.rotateKeys();
    const fresh = kube.issueToken({ namespace: 'a', serviceAccount: 'b' });
    expect((await s.client.check({ host: 'k8s.example.com', headers: bearer(fresh) })).httpStatus).toBe(200);
    expect(kube.calls.jwks).toBe(1);
    expect(kube.calls.tokenReviews).toBe(0);
  });

  // Last in this block: the unknown-kid refresh it causes starts the refresh cooldown.
  it('stops accepting a remembered token once its key is withdrawn and the keys are refreshed', async () => {
    const token = kube.issueToken({ namespace: 'a', serviceAccount: 'withdrawn' });
    expect((await s.client.check({ host: 'k8s.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    kube.rotateKeys();
    kube.dropOldKeys();
    // The scheduled refresh, run now: the key set changed, so verdicts made with the old keys are not reused.
    const store = s.app.services.singleton<{ refresh(): Promise<void> }>('identity:jwks:kubernetes', () => {
      throw new Error('the Kubernetes key store should exist');
    });
    await store.refresh();
    const r = await s.client.check({ host: 'k8s.example.com', headers: bearer(token) });
    expect(r.httpStatus).toBe(401);
    expect(reason(r)).toBe('token: token signed by an unknown key');
  });
});

describe('load-time validation', () => {
  function load(jwt: string): string[] {
    const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
    const r = loadPolicyDirectory(makePolicyDir({ 'p.yaml': policy('bad', 'bad.example.com', jwt) }), services);
    void services.close();
    return r.ok ? [] : r.diagnostics.map(formatDiagnostic);
  }

  it('requires exactly one key source', () => {
    expect(load('audiences: [x]').join('\n')).toContain('give exactly one key source: issuerUrl, jwksUrl or kubernetes: true');
    expect(load('issuerUrl: https://a.example\nkubernetes: true').join('\n')).toContain('(got issuerUrl, kubernetes: true)');
  });

  it('requires the issuer with jwksUrl, https off loopback, and known algorithms', () => {
    expect(load('jwksUrl: https://a.example/jwks').join('\n')).toContain('give the expected issuer');
    expect(load('issuerUrl: http://idp.example').join('\n')).toContain('must be an https URL (plain http only on loopback)');
    expect(load('issuerUrl: https://a.example\nalgorithms: [HS256]').join('\n')).toContain('algorithm "HS256" is not allowed');
    expect(load('issuerUrl: https://a.example\naudience: [x]').join('\n')).toMatch(/unknown field "audience" in jwt.*audiences/);
  });
});
