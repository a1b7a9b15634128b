import { request as httpsRequest } from 'node:https';
import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify, type FetchImplementation } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKubeApiserver, type FakeKubeApiserver } from './fake-kube-apiserver.js';
import { fetchTrustingCa, type CaFetch } from './tls.js';

const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let kube: FakeKubeApiserver;
let fetchKube: CaFetch;

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  fetchKube = fetchTrustingCa(kube.caPem);
});
afterAll(async () => {
  await kube.close();
});

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function postTokenReview(
  body: unknown,
  bearer: string | null = kube.reviewerToken,
  server: FakeKubeApiserver = kube,
): Promise<{ status: number; contentType: string | null; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (bearer !== null) headers['Authorization'] = `Bearer ${bearer}`;
  const res = await fetchTrustingCa(server.caPem)(`${server.url}${TOKEN_REVIEW_PATH}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), json: (await res.json()) as Record<string, unknown> };
}

const typedReview = (token: string, audiences?: string[]) => ({
  kind: 'TokenReview',
  apiVersion: 'authentication.k8s.io/v1',
  spec: audiences === undefined ? { token } : { token, audiences },
});

describe('issued service-account tokens', () => {
  it('carry the projected claim shape of a current cluster', () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    const header = decodeProtectedHeader(token);
    expect(header).toEqual({ alg: 'RS256', kid: kube.currentKeyId('RS256') });
    const claims = claimsOf(token);
    expect(Object.keys(claims)).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'kubernetes.io', 'nbf', 'sub']);
    expect(claims['aud']).toEqual([kube.issuer]);
    expect(claims['iss']).toBe('https://kubernetes.default.svc.cluster.local');
    expect(claims['sub']).toBe('system:serviceaccount:payments:checkout');
    expect(claims['exp']).toBe((claims['iat'] as number) + 3600);
    expect(claims['nbf']).toBe(claims['iat']);
    expect(claims['jti']).toMatch(UUID);
    const k8s = claims['kubernetes.io'] as Record<string, { name: string; uid: string } | string>;
    expect(k8s['namespace']).toBe('payments');
    expect(k8s['serviceaccount']).toEqual({ name: 'checkout', uid: kube.serviceAccountUid('payments', 'checkout') });
    expect((k8s['pod'] as { uid: string }).uid).toMatch(UUID);
    expect((k8s['node'] as { uid: string }).uid).toMatch(UUID);
  });

  it('keep service-account uids stable and let optional claims be omitted', () => {
    expect(kube.serviceAccountUid('payments', 'checkout')).toBe(kube.serviceAccountUid('payments', 'checkout'));
    expect(kube.serviceAccountUid('payments', 'checkout')).not.toBe(kube.serviceAccountUid('payments', 'billing'));
    const token = kube.issueToken({ namespace: 'a', serviceAccount: 'b', pod: null, node: null, jti: null, audiences: ['vault'] });
    const claims = claimsOf(token);
    expect(claims['jti']).toBeUndefined();
    expect(claims['aud']).toEqual(['vault']);
    expect(Object.keys(claims['kubernetes.io'] as object)).toEqual(['namespace', 'serviceaccount']);
  });
});

describe('TokenReview', () => {
  it('authenticates a valid token with 201 and the exact status shape', async () => {
    const pod = { name: 'checkout-5b84d8dd85-xz2rr', uid: 'adbcb431-1ba9-4022-b222-a5ba02534005' };
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', pod, jti: 'jti-1' });
    const res = await postTokenReview(typedReview(token));
    expect(res.status).toBe(201);
    expect(res.contentType).toBe('application/json');
    expect(res.json).toEqual({
      kind: 'TokenReview',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { token },
      status: {
        authenticated: true,
        user: {
          username: 'system:serviceaccount:payments:checkout',
          uid: kube.serviceAccountUid('payments', 'checkout'),
          groups: ['system:serviceaccounts', 'system:serviceaccounts:payments', 'system:authenticated'],
          extra: {
            'authentication.kubernetes.io/credential-id': ['JTI=jti-1'],
            'authentication.kubernetes.io/node-name': ['kind-worker'],
            'authentication.kubernetes.io/node-uid': ['52c81fbd-d2e9-4c7a-b45f-89df2615076b'],
            'authentication.kubernetes.io/pod-name': [pod.name],
            'authentication.kubernetes.io/pod-uid': [pod.uid],
          },
        },
        audiences: [kube.issuer],
      },
    });
  });

  it("accepts Vault's untyped body and answers for the requested audiences", async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', audiences: ['vault', 'other'] });
    const res = await postTokenReview({
      metadata: { creationTimestamp: null },
      spec: { token, audiences: ['vault'] },
      status: { user: {} },
    });
    expect(res.status).toBe(201);
    const status = res.json['status'] as Record<string, unknown>;
    expect(status['authenticated']).toBe(true);
    expect(status['audiences']).toEqual(['vault']);
    expect(res.json['spec']).toEqual({ token, audiences: ['vault'] });
  });

  it('verifies ES256 tokens too', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', alg: 'ES256' });
    expect(decodeProtectedHeader(token).alg).toBe('ES256');
    const res = await postTokenReview(typedReview(token));
    expect((res.json['status'] as Record<string, unknown>)['authenticated']).toBe(true);
  });

  it('rejects a token whose audiences do not intersect, with no authenticated key at all', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', audiences: ['vault'] });
    const res = await postTokenReview(typedReview(token, ['https://elsewhere']));
    expect(res.status).toBe(201);
    const status = res.json['status'] as Record<string, unknown>;
    expect(Object.keys(status).sort()).toEqual(['error', 'user']);
    expect(status['user']).toEqual({});
    expect(status['error']).toBe(
      '[invalid bearer token, token audiences ["vault"] is invalid for the target audiences ["https://elsewhere"]]',
    );
  });

  it('defaults the requested audiences to the apiserver audience', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', audiences: ['vault'] });
    const status = (await postTokenReview(typedReview(token))).json['status'] as Record<string, unknown>;
    expect(status['authenticated']).toBeUndefined();
    expect(String(status['error'])).toContain('is invalid for the target audiences');
  });

  it('rejects an expired token, tolerating go-jose clock leeway', async () => {
    const expired = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', expiresInSeconds: -600 });
    const status = (await postTokenReview(typedReview(expired))).json['status'] as Record<string, unknown>;
    expect(status).toEqual({ user: {}, error: '[invalid bearer token, service account token has expired]' });
    const justExpired = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', expiresInSeconds: -5 });
    const lenient = (await postTokenReview(typedReview(justExpired))).json['status'] as Record<string, unknown>;
    expect(lenient['authenticated']).toBe(true);
  });

  it('rejects tampered, foreign-issuer, not-yet-valid and revoked tokens', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    const [h, p, s] = token.split('.') as [string, string, string];
    const forged = claimsOf(token);
    forged['sub'] = 'system:serviceaccount:kube-system:admin';
    const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`;
    expect(p).not.toBe(tampered.split('.')[1]);
    const foreign = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', issuer: 'https://other.example' });
    const future = kube.issueToken({
      namespace: 'payments',
      serviceAccount: 'checkout',
      notBefore: Math.floor(Date.now() / 1000) + 3600,
    });
    const revoked = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    kube.revokeToken(revoked);
    const errors = [];
    for (const t of [tampered, foreign, future, revoked, 'not-a-jwt']) {
      const res = await postTokenReview(typedReview(t));
      expect(res.status).toBe(201);
      const status = res.json['status'] as Record<string, unknown>;
      expect(status['authenticated']).toBeUndefined();
      expect(status['user']).toEqual({});
      errors.push(status['error']);
    }
    expect(errors).toEqual([
      '[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]',
      '[invalid bearer token]',
      '[invalid bearer token, service account token is not valid yet]',
      '[invalid bearer token, service account token has been invalidated]',
      '[invalid bearer token]',
    ]);
  });

  it('answers 400 for an empty token', async () => {
    const res = await postTokenReview(typedReview(''));
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'token is required for TokenReview in authentication',
      reason: 'BadRequest',
      code: 400,
    });
  });

  it('requires the reviewer bearer token', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    const unauthorized = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    };
    const missing = await postTokenReview(typedReview(token), null);
    expect(missing.status).toBe(401);
    expect(missing.json).toEqual(unauthorized);
    const wrong = await postTokenReview(typedReview(token), 'garbage');
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual(unauthorized);
    // A valid service account without system:auth-delegator is authenticated but forbidden.
    const other = await postTokenReview(typedReview(token), token);
    expect(other.status).toBe(403);
    expect(other.json['reason']).toBe('Forbidden');
    expect(other.json['message']).toContain('User "system:serviceaccount:payments:checkout" cannot create resource');
  });

  it('answers the §5 403 Status when the reviewer lacks create tokenreviews', async () => {
    kube.setForbiddenReviewer(true);
    try {
      const res = await postTokenReview(typedReview(kube.issueToken({ namespace: 'a', serviceAccount: 'b' })));
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message:
          'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:egress-authz:egress-authz" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope',
        reason: 'Forbidden',
        details: { group: 'authentication.k8s.io', kind: 'tokenreviews' },
        code: 403,
      });
    } finally {
      kube.setForbiddenReviewer(false);
    }
  });
});

describe('OIDC discovery and JWKS', () => {
  it('serves the discovery document with jwks_uri pointing at this server', async () => {
    const res = await fetchKube(`${kube.url}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    const text = await res.text();
    expect(Object.keys(JSON.parse(text) as object)).toEqual([
      'issuer',
      'jwks_uri',
      'response_types_supported',
      'subject_types_supported',
      'id_token_signing_alg_values_supported',
    ]);
    expect(JSON.parse(text)).toEqual({
      issuer: kube.issuer,
      jwks_uri: `${kube.url}/openid/v1/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256', 'RS256'],
    });
  });

  it('serves a go-jose shaped key set', async () => {
    const res = await fetchKube(`${kube.url}/openid/v1/jwks`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json');
    const { keys } = (await res.json()) as { keys: Record<string, string>[] };
    expect(keys.map((k) => k['kid'])).toEqual(kube.publishedKeyIds());
    const rsa = keys.find((k) => k['kty'] === 'RSA');
    const ec = keys.find((k) => k['kty'] === 'EC');
    expect(Object.keys(rsa ?? {})).toEqual(['use', 'kty', 'kid', 'alg', 'n', 'e']);
    expect(rsa).toMatchObject({ use: 'sig', alg: 'RS256', e: 'AQAB', kid: kube.currentKeyId('RS256') });
    expect(Object.keys(ec ?? {})).toEqual(['use', 'kty', 'kid', 'crv', 'alg', 'x', 'y']);
    expect(ec).toMatchObject({ use: 'sig', alg: 'ES256', crv: 'P-256', kid: kube.currentKeyId('ES256') });
  });

  it('can require authentication for discovery, as a cluster without the anonymous binding', async () => {
    const locked = await startFakeKubeApiserver({ discoveryRequiresAuth: true });
    try {
      const fetchLocked = fetchTrustingCa(locked.caPem);
      const anonymous = await fetchLocked(`${locked.url}/openid/v1/jwks`);
      expect(anonymous.status).toBe(401);
      expect(((await anonymous.json()) as Record<string, unknown>)['reason']).toBe('Unauthorized');
      const token = locked.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
      const authorized = await fetchLocked(`${locked.url}/.well-known/openid-configuration`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(authorized.status).toBe(200);
    } finally {
      await locked.close();
    }
  });

  it('lets jose verify RS256 and ES256 tokens against the remote JWKS', async () => {
    const jwks = createRemoteJWKSet(new URL(`${kube.url}/openid/v1/jwks`), {
      [customFetch]: fetchKube as unknown as FetchImplementation,
    });
    for (const alg of ['RS256', 'ES256'] as const) {
      const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', alg, audiences: ['egress'] });
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: kube.issuer, audience: 'egress' });
      expect(protectedHeader.alg).toBe(alg);
      expect(payload.sub).toBe('system:serviceaccount:payments:checkout');
    }
    const expired = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', expiresInSeconds: -600 });
    await expect(jwtVerify(expired, jwks, { issuer: kube.issuer })).rejects.toThrow(/exp/);
  });

  it('keeps old keys published after rotation until dropOldKeys', async () => {
    const rotating = await startFakeKubeApiserver();
    try {
      const fetchRotating = fetchTrustingCa(rotating.caPem);
      const before = rotating.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
      const oldKid = rotating.currentKeyId('RS256');
      const newKids = rotating.rotateKeys();
      expect(newKids.RS256).not.toBe(oldKid);
      const after = rotating.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
      expect(decodeProtectedHeader(after).kid).toBe(newKids.RS256);
      expect(rotating.publishedKeyIds()).toEqual(expect.arrayContaining([oldKid, newKids.RS256, newKids.ES256]));

      const jwks = createRemoteJWKSet(new URL(`${rotating.url}/openid/v1/jwks`), {
        [customFetch]: fetchRotating as unknown as FetchImplementation,
      });
      await expect(jwtVerify(before, jwks)).resolves.toBeDefined();
      await expect(jwtVerify(after, jwks)).resolves.toBeDefined();
      const reviewBefore = await postTokenReview(typedReview(before), rotating.reviewerToken, rotating);
      expect((reviewBefore.json['status'] as Record<string, unknown>)['authenticated']).toBe(true);

      rotating.dropOldKeys();
      expect(rotating.publishedKeyIds()).toEqual([newKids.RS256, newKids.ES256]);
      const reviewDropped = await postTokenReview(typedReview(before), rotating.reviewerToken, rotating);
      expect((reviewDropped.json['status'] as Record<string, unknown>)['authenticated']).toBeUndefined();
      const fresh = createRemoteJWKSet(new URL(`${rotating.url}/openid/v1/jwks`), {
        [customFetch]: fetchRotating as unknown as FetchImplementation,
      });
      await expect(jwtVerify(before, fresh)).rejects.toThrow();
      await expect(jwtVerify(after, fresh)).resolves.toBeDefined();
    } finally {
      await rotating.close();
    }
  });
});

describe('counters and failure injection', () => {
  it('counts calls per endpoint and resets them', async () => {
    kube.resetCounters();
    await fetchKube(`${kube.url}/openid/v1/jwks`);
    await fetchKube(`${kube.url}/openid/v1/jwks`);
    await fetchKube(`${kube.url}/.well-known/openid-configuration`);
    await postTokenReview(typedReview(kube.issueToken({ namespace: 'a', serviceAccount: 'b' })));
    expect(kube.calls).toEqual({ tokenReviews: 1, jwks: 2, discovery: 1 });
    kube.resetCounters();
    expect(kube.calls).toEqual({ tokenReviews: 0, jwks: 0, discovery: 0 });
  });

  it('injects 500 Status failures until reset', async () => {
    kube.setFailure('500');
    try {
      const res = await fetchKube(`${kube.url}/openid/v1/jwks`);
      expect(res.status).toBe(500);
      expect(((await res.json()) as Record<string, unknown>)['reason']).toBe('InternalError');
    } finally {
      kube.setFailure('none');
    }
    expect((await fetchKube(`${kube.url}/openid/v1/jwks`)).status).toBe(200);
  });

  it('delays responses so a client deadline fires', async () => {
    kube.setLatencyMs(5_000);
    try {
      await expect(
        fetchKube(`${kube.url}/openid/v1/jwks`, { signal: AbortSignal.timeout(100) }),
      ).rejects.toThrow();
    } finally {
      kube.setLatencyMs(0);
    }
  });

  it('refuses connections while stopped and serves again on the same port', async () => {
    const url = kube.url;
    // Hold a keep-alive connection open to prove stop() also closes existing sockets.
    const agentRequest = new Promise<number>((resolve, reject) => {
      const req = httpsRequest(`${url}/openid/v1/jwks`, { ca: kube.caPem, headers: { Connection: 'keep-alive' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    expect(await agentRequest).toBe(200);
    await kube.stop();
    await expect(fetchKube(`${url}/openid/v1/jwks`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await kube.start();
    expect(kube.url).toBe(url);
    expect((await fetchKube(`${url}/openid/v1/jwks`)).status).toBe(200);
  });
});
