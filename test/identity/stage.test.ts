// The authentication stage: priority order, `when`, falling through to the next method, the 401 challenges,
// and load-time checks of the method entries.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Services } from '../../src/pipeline/services.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { makePolicyDir, startTestServer, type TestServer } from '../support/test-server.js';
import { authorizationHeader } from '../../src/identity/credentials.js';
import { toRequestView } from '../../src/envoy/request.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../../src/envoy/codec.js';
import { buildCheckRequest } from '../../src/cli/check-client.js';

const keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-stage-')), 'keys.yaml');
fs.writeFileSync(keyFile, '- key: good-key\n  name: partner\n');

function policy(authentication: string, host = 'stage.example.com'): string {
  return `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: stage
spec:
  hosts: [${host}]
  authentication:
${authentication
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
  response:
    success:
      headers:
        x-who: 'has(auth.identity.name) ? auth.identity.name : (has(auth.identity.principal) ? auth.identity.principal : "anonymous")'
`;
}

describe('running methods', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({
      files: {
        'p.yaml': policy(`
public:
  priority: 2
  anonymous: {}
partner:
  priority: 1
  when: request.path.startsWith("/partner")
  apiKey:
    file: ${keyFile}
  credentials:
    customHeader:
      name: x-api-key
mesh:
  priority: 0
  spiffe:
    trustDomains: [cluster.local]
`),
      },
    });
  });
  afterAll(() => s?.close());

  const who = async (opts: { path?: string; headers?: Record<string, string>; principal?: string }) => {
    const r = await s.client.check({ host: 'stage.example.com', ...opts });
    return r.allowed ? r.headers.find((h) => h.key === 'x-who')?.value : `denied ${r.httpStatus}`;
  };

  it('tries methods by ascending priority; the first success wins', async () => {
    expect(await who({ path: '/partner', headers: { 'x-api-key': 'good-key' }, principal: 'spiffe://cluster.local/ns/a/sa/b' })).toBe(
      'spiffe://cluster.local/ns/a/sa/b',
    );
    expect(await who({ path: '/partner', headers: { 'x-api-key': 'good-key' } })).toBe('partner');
  });

  it('skips a method whose `when` is false, and falls through past a rejected credential', async () => {
    expect(await who({ path: '/other', headers: { 'x-api-key': 'good-key' } })).toBe('anonymous');
    expect(await who({ path: '/partner', headers: { 'x-api-key': 'bad-key' } })).toBe('anonymous');
  });
});

describe('401 challenges', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({
      files: {
        'p.yaml': policy(`
key-in-header:
  apiKey:
    file: ${keyFile}
  credentials:
    authorizationHeader:
      prefix: ApiKey
mesh:
  spiffe: {}
`),
      },
    });
  });
  afterAll(() => s?.close());

  it('names each challenge once, with error="invalid_token" only for the method that rejected a credential', async () => {
    const none = await s.client.check({ host: 'stage.example.com' });
    expect(none.httpStatus).toBe(401);
    expect(none.headers.filter((h) => h.key === 'www-authenticate').map((h) => h.value)).toEqual(['ApiKey realm="egress-authz"']);
    const bad = await s.client.check({ host: 'stage.example.com', headers: { authorization: 'ApiKey nope' } });
    expect(bad.headers.filter((h) => h.key === 'www-authenticate').map((h) => h.value)).toEqual([
      'ApiKey realm="egress-authz", error="invalid_token"',
    ]);
    expect(JSON.parse(bad.body)).toEqual({ error: 'unauthenticated', reason: 'key-in-header: unknown API key' });
  });
});

describe('load-time checks', () => {
  function load(authentication: string): string {
    const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
    const r = loadPolicyDirectory(makePolicyDir({ 'p.yaml': policy(authentication) }), services);
    void services.close();
    return r.ok ? '' : r.diagnostics.map(formatDiagnostic).join('\n');
  }

  it('suggests the right method name for a typo', () => {
    expect(load('sa:\n  kubernetesTokenReveiw: {audiences: [x]}')).toContain('did you mean "kubernetesTokenReview"');
  });

  it('accepts Kuadrant cache {key, ttl} and rejects a negative ttl', () => {
    expect(load('sa:\n  cache: {key: {selector: x}, ttl: 30}\n  kubernetesTokenReview: {audiences: [x]}')).toBe('');
    expect(load('sa:\n  cache: {ttl: -1}\n  kubernetesTokenReview: {audiences: [x]}')).toContain('cache.ttl must be zero or more seconds');
  });

  it('loads every method kind without touching the network (lint)', () => {
    expect(
      load(`
a:
  kubernetesTokenReview: {audiences: [x]}
b:
  jwt: {kubernetes: true}
c:
  jwt: {issuerUrl: "https://idp.example"}
d:
  apiKey: {selector: {matchLabels: {app: x}}, allNamespaces: true}
e:
  spiffe: {trustDomains: [cluster.local]}
f:
  anonymous: {}
`),
    ).toBe('');
  });
});

describe('credential sources', () => {
  it('reads the Authorization scheme case-insensitively and only as a whole word', () => {
    const viewWith = (authorization: string) =>
      toRequestView(deserializeCheckRequest(serializeCheckRequest(buildCheckRequest({ host: 'h', headers: { authorization } }))));
    const bearer = authorizationHeader('Bearer');
    expect(bearer.extract(viewWith('Bearer tok-1'))).toBe('tok-1');
    expect(bearer.extract(viewWith('bearer tok-2'))).toBe('tok-2');
    expect(bearer.extract(viewWith('BEARER  tok-3 '))).toBe('tok-3');
    expect(bearer.extract(viewWith('Bearertok-4'))).toBeUndefined();
    expect(bearer.extract(viewWith('Basic dXNlcjpwYXNz'))).toBeUndefined();
    expect(bearer.extract(viewWith('Bearer '))).toBeUndefined();
  });
});
