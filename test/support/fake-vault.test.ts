import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeKubeApiserver, type FakeKubeApiserver } from './fake-kube-apiserver.js';
import { startFakeVault, type FakeVault } from './fake-vault.js';

let kube: FakeKubeApiserver;
let vault: FakeVault;

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  vault = await startFakeVault({ kube });
  vault.addPolicy('egress-read', [{ path: 'secret/data/egress/*', capabilities: ['read'] }]);
  vault.addRole('kubernetes', 'checkout', {
    boundServiceAccountNames: ['checkout'],
    boundServiceAccountNamespaces: ['payments'],
    policies: ['egress-read'],
  });
});
afterAll(async () => {
  await vault.close();
  await kube.close();
});

interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

async function call(path: string, init: { method?: string; token?: string; bearer?: string; body?: unknown } = {}): Promise<RawResponse> {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers['X-Vault-Token'] = init.token;
  if (init.bearer !== undefined) headers['Authorization'] = `Bearer ${init.bearer}`;
  const res = await fetch(`${vault.url}${path}`, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as Record<string, unknown> };
}

function login(jwt: string, role = 'checkout', mount = 'kubernetes', method = 'POST'): Promise<RawResponse> {
  return call(`/v1/auth/${mount}/login`, { method, body: { jwt, role } });
}

async function loginToken(namespace = 'payments', serviceAccount = 'checkout'): Promise<string> {
  const res = await login(kube.issueToken({ namespace, serviceAccount }));
  expect(res.status).toBe(200);
  return (res.json['auth'] as { client_token: string }).client_token;
}

function expectVaultError(res: RawResponse, status: number, errors: string[]): void {
  expect(res.status).toBe(status);
  expect(res.text).toBe(`${JSON.stringify({ errors })}\n`);
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.headers.get('cache-control')).toBe('no-store');
}

describe('Kubernetes auth login', () => {
  it('issues a token with the full §2 envelope after a TokenReview', async () => {
    kube.resetCounters();
    const res = await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' }));
    expect(res.status).toBe(200);
    expect(kube.calls.tokenReviews).toBe(1);
    expect(Object.keys(res.json)).toEqual([
      'request_id',
      'lease_id',
      'renewable',
      'lease_duration',
      'data',
      'wrap_info',
      'warnings',
      'auth',
      'mount_type',
    ]);
    const auth = res.json['auth'] as Record<string, unknown>;
    expect(res.json).toMatchObject({
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: null,
      wrap_info: null,
      warnings: null,
      mount_type: '',
    });
    expect(res.json['request_id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(auth)).toEqual([
      'client_token',
      'accessor',
      'policies',
      'token_policies',
      'metadata',
      'lease_duration',
      'renewable',
      'entity_id',
      'token_type',
      'orphan',
      'mfa_requirement',
      'num_uses',
    ]);
    expect(auth['client_token']).toMatch(/^hvs\.[A-Za-z0-9]{20,}$/);
    expect(auth).toMatchObject({
      policies: ['default', 'egress-read'],
      token_policies: ['default', 'egress-read'],
      metadata: {
        role: 'checkout',
        service_account_name: 'checkout',
        service_account_namespace: 'payments',
        service_account_secret_name: '',
        service_account_uid: kube.serviceAccountUid('payments', 'checkout'),
      },
      lease_duration: 3600,
      renewable: true,
      token_type: 'service',
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    });
    expect(res.text.endsWith('}\n')).toBe(true);
    expect(vault.tokensIssued()).toContain(auth['client_token']);
  });

  it('accepts PUT as the Vault CLI sends it', async () => {
    const res = await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' }), 'checkout', 'kubernetes', 'PUT');
    expect(res.status).toBe(200);
  });

  it('answers the §2 error table', async () => {
    expectVaultError(await login(kube.issueToken({ namespace: 'other', serviceAccount: 'checkout' })), 403, [
      'namespace not authorized',
    ]);
    expectVaultError(await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'billing' })), 403, [
      'service account name not authorized',
    ]);
    expectVaultError(await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' }), 'nope'), 400, [
      'invalid role name "nope"',
    ]);
    expectVaultError(await call('/v1/auth/kubernetes/login', { method: 'POST', body: { role: 'checkout' } }), 400, ['missing jwt']);
    expectVaultError(await call('/v1/auth/kubernetes/login', { method: 'POST', body: { jwt: 'x' } }), 400, ['missing role']);
    expectVaultError(
      await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout', expiresInSeconds: -600 })),
      403,
      ['invalid expiration time (exp) claim: token is expired'],
    );
    expectVaultError(await login('not-a-jwt'), 403, ['permission denied']);
  });

  it('denies when the TokenReview rejects the token', async () => {
    const revoked = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    kube.revokeToken(revoked);
    kube.resetCounters();
    expectVaultError(await login(revoked), 403, ['permission denied']);
    expect(kube.calls.tokenReviews).toBe(1);

    // Same claims, signed by another cluster's key: only the TokenReview can tell.
    const otherCluster = await startFakeKubeApiserver();
    try {
      const foreign = otherCluster.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
      expectVaultError(await login(foreign), 403, ['permission denied']);
    } finally {
      await otherCluster.close();
    }
  });

  it('denies when the reviewer may not create TokenReviews or the apiserver is down', async () => {
    const token = kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
    kube.setForbiddenReviewer(true);
    try {
      expectVaultError(await login(token), 403, ['permission denied']);
    } finally {
      kube.setForbiddenReviewer(false);
    }
    await kube.stop();
    try {
      expectVaultError(await login(token), 403, ['permission denied']);
    } finally {
      await kube.start();
    }
    expect((await login(token)).status).toBe(200);
  });

  it('enforces a role audience and supports globs and several mounts', async () => {
    vault.addRole('kubernetes', 'audience-bound', {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: ['team-*'],
      audience: 'vault',
      ttlSeconds: 120,
    });
    const good = await login(kube.issueToken({ namespace: 'team-a', serviceAccount: 'x', audiences: ['vault'] }), 'audience-bound');
    expect(good.status).toBe(200);
    expect((good.json['auth'] as { lease_duration: number }).lease_duration).toBe(120);
    expectVaultError(
      await login(kube.issueToken({ namespace: 'team-a', serviceAccount: 'x', audiences: ['other'] }), 'audience-bound'),
      403,
      ['invalid audience (aud) claim: audience claim does not match any expected audience'],
    );
    expectVaultError(
      await login(kube.issueToken({ namespace: 'prod', serviceAccount: 'x', audiences: ['vault'] }), 'audience-bound'),
      403,
      ['namespace not authorized'],
    );

    const clusterB = await startFakeKubeApiserver();
    try {
      vault.addAuthMount('kubernetes-b', clusterB);
      vault.addRole('kubernetes-b', 'checkout', {
        boundServiceAccountNames: ['checkout'],
        boundServiceAccountNamespaces: ['payments'],
      });
      const tokenB = clusterB.issueToken({ namespace: 'payments', serviceAccount: 'checkout' });
      expect((await login(tokenB, 'checkout', 'kubernetes-b')).status).toBe(200);
      expectVaultError(await login(tokenB, 'checkout', 'kubernetes'), 403, ['permission denied']);
    } finally {
      await clusterB.close();
    }
  });
});

describe('KV v2 reads', () => {
  it('returns the full envelope and a new version on each rotation', async () => {
    const token = await loginToken();
    const v1 = vault.putSecret('secret', 'egress/stripe', { api_key: 'sk_test_first' });
    const v2 = vault.putSecret('secret', 'egress/stripe', { api_key: 'sk_test_second' });
    expect([v1, v2]).toEqual([1, 2]);

    const latest = await call('/v1/secret/data/egress/stripe', { token });
    expect(latest.status).toBe(200);
    expect(latest.headers.get('cache-control')).toBe('no-store');
    expect(latest.json).toMatchObject({
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      wrap_info: null,
      warnings: null,
      auth: null,
      mount_type: 'kv',
    });
    const data = latest.json['data'] as { data: unknown; metadata: Record<string, unknown> };
    expect(data.data).toEqual({ api_key: 'sk_test_second' });
    expect(Object.keys(data.metadata)).toEqual(['created_time', 'custom_metadata', 'deletion_time', 'destroyed', 'version']);
    expect(data.metadata).toMatchObject({ custom_metadata: null, deletion_time: '', destroyed: false, version: 2 });
    expect(String(data.metadata['created_time'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);

    const first = await call('/v1/secret/data/egress/stripe?version=1', { bearer: token });
    expect((first.json['data'] as { data: unknown }).data).toEqual({ api_key: 'sk_test_first' });
    expect(vault.secretValues()).toEqual(expect.arrayContaining(['sk_test_first', 'sk_test_second']));
  });

  it('answers 404 {"errors":[]} for a missing path or version', async () => {
    const token = await loginToken();
    expectVaultError(await call('/v1/secret/data/egress/missing', { token }), 404, []);
    vault.putSecret('secret', 'egress/one-version', { k: 'v' });
    expectVaultError(await call('/v1/secret/data/egress/one-version?version=7', { token }), 404, []);
  });

  it('answers 404 with the full envelope for a soft-deleted version', async () => {
    const token = await loginToken();
    vault.putSecret('secret', 'egress/deleted', { k: 'gone' });
    vault.deleteSecret('secret', 'egress/deleted');
    const res = await call('/v1/secret/data/egress/deleted', { token });
    expect(res.status).toBe(404);
    expect(res.json['mount_type']).toBe('kv');
    const data = res.json['data'] as { data: unknown; metadata: Record<string, unknown> };
    expect(data.data).toBeNull();
    expect(data.metadata['version']).toBe(1);
    expect(data.metadata['deletion_time']).not.toBe('');
  });

  it('denies with 403 when the token is missing, unknown, expired or not allowed by policy', async () => {
    vault.putSecret('secret', 'other/db', { password: 'hunter2' });
    vault.putSecret('secret', 'egress/ok', { k: 'v' });
    const token = await loginToken();
    expectVaultError(await call('/v1/secret/data/other/db', { token }), 403, ['permission denied']);
    expectVaultError(await call('/v1/secret/data/egress/ok'), 403, ['permission denied']);
    expectVaultError(await call('/v1/secret/data/egress/ok', { token: 'hvs.unknown' }), 403, ['permission denied']);
    expect((await call('/v1/secret/data/egress/ok', { token })).status).toBe(200);
    vault.expireAllTokens();
    expectVaultError(await call('/v1/secret/data/egress/ok', { token }), 403, ['permission denied']);
    expect((await call('/v1/secret/data/other/db', { token: vault.rootToken })).status).toBe(200);
  });

  it('applies Vault glob semantics: + is one segment, * a prefix, deny wins', async () => {
    vault.addPolicy('globs', [
      { path: 'secret/data/+/config', capabilities: ['read'] },
      { path: 'secret/data/team/*', capabilities: ['read'] },
      { path: 'secret/data/team/private', capabilities: ['deny'] },
    ]);
    vault.addRole('kubernetes', 'globs', {
      boundServiceAccountNames: ['globs'],
      boundServiceAccountNamespaces: ['*'],
      policies: ['globs'],
    });
    const res = await login(kube.issueToken({ namespace: 'any', serviceAccount: 'globs' }), 'globs');
    const token = (res.json['auth'] as { client_token: string }).client_token;
    for (const path of ['a/config', 'a/b/config', 'team/x/y', 'team/private']) vault.putSecret('secret', path, { k: path });
    const statuses = [];
    for (const path of ['a/config', 'a/b/config', 'team/x/y', 'team/private']) {
      statuses.push((await call(`/v1/secret/data/${path}`, { token })).status);
    }
    expect(statuses).toEqual([200, 403, 200, 403]);
  });

  it('warns on a KV v2 path without data/ and reads KV v1 mounts directly', async () => {
    const root = vault.rootToken;
    vault.putSecret('secret', 'plain', { k: 'v' });
    const wrongPath = await call('/v1/secret/plain', { token: root });
    expect(wrongPath.status).toBe(404);
    expect(wrongPath.json['warnings']).toEqual([expect.stringContaining('Invalid path for a versioned K/V secrets engine')]);

    vault.enableKvV1('kv1');
    vault.putSecret('kv1', 'egress/legacy', { token: 'legacy-value' });
    const v1 = await call('/v1/kv1/egress/legacy', { token: root });
    expect(v1.status).toBe(200);
    expect(v1.json['data']).toEqual({ token: 'legacy-value' });
    expect(v1.json['mount_type']).toBe('kv');
  });
});

describe('token lookup-self', () => {
  it('describes a Kubernetes-auth token per §4', async () => {
    const token = await loginToken();
    const res = await call('/v1/auth/token/lookup-self', { token });
    expect(res.status).toBe(200);
    const data = res.json['data'] as Record<string, unknown>;
    expect(data).toMatchObject({
      id: token,
      policies: ['default', 'egress-read'],
      path: 'auth/kubernetes/login',
      display_name: 'kubernetes-payments-checkout',
      meta: {
        role: 'checkout',
        service_account_name: 'checkout',
        service_account_namespace: 'payments',
        service_account_secret_name: '',
        service_account_uid: kube.serviceAccountUid('payments', 'checkout'),
      },
      num_uses: 0,
      orphan: true,
      creation_ttl: 3600,
      explicit_max_ttl: 0,
      type: 'service',
      renewable: true,
    });
    expect(data['ttl']).toBeGreaterThan(3500);
    expect(typeof data['expire_time']).toBe('string');
    expectVaultError(await call('/v1/auth/token/lookup-self', { token: 'hvs.nope' }), 403, ['permission denied']);
  });
});

describe('counters and failure injection', () => {
  it('counts logins, reads and lookups', async () => {
    vault.resetCounters();
    const token = await loginToken();
    await call('/v1/secret/data/egress/stripe', { token });
    await call('/v1/secret/data/egress/missing', { token });
    await call('/v1/auth/token/lookup-self', { token });
    expect(vault.calls).toEqual({ login: 1, read: 2, lookupSelf: 1 });
    vault.resetCounters();
    expect(vault.calls).toEqual({ login: 0, read: 0, lookupSelf: 0 });
  });

  it('answers sealed and internal errors while injected', async () => {
    const token = await loginToken();
    vault.setFailure('503-sealed');
    try {
      expectVaultError(await call('/v1/secret/data/egress/stripe', { token }), 503, ['Vault is sealed']);
      vault.setFailure('500');
      expectVaultError(await login(kube.issueToken({ namespace: 'payments', serviceAccount: 'checkout' })), 500, ['internal error']);
    } finally {
      vault.setFailure('none');
    }
    expect((await call('/v1/secret/data/egress/stripe', { token })).status).toBe(200);
  });

  it('delays responses so a client deadline fires', async () => {
    vault.setLatencyMs(5_000);
    try {
      await expect(fetch(`${vault.url}/v1/auth/token/lookup-self`, { signal: AbortSignal.timeout(100) })).rejects.toThrow();
    } finally {
      vault.setLatencyMs(0);
    }
  });

  it('refuses connections while stopped and serves again on the same port', async () => {
    const url = vault.url;
    await vault.stop();
    // A fresh connection (not fetch's keep-alive pool) must be refused outright.
    const attempt = new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${url}/v1/auth/token/lookup-self`, { agent: false }, () => resolve());
      req.on('error', reject);
      req.end();
    });
    await expect(attempt).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await vault.start();
    expect(vault.url).toBe(url);
    expect((await call('/v1/auth/token/lookup-self', { token: vault.rootToken })).status).toBe(200);
  });
});
