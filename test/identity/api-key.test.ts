// apiKey over real gRPC: keys from a file (plain or as SHA-256 digests) and from Kubernetes Secrets selected by
// label; the owner as identity; load errors that never quote a key.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { structToJs } from '../../src/envoy/codec.js';
import { findKey } from '../../src/identity/api-key.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Services } from '../../src/pipeline/services.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import type { CheckResult } from '../../src/cli/check-client.js';
import { makePolicyDir, startTestServer, type TestServer } from '../support/test-server.js';
import { startFakeSecretsApi, type FakeSecretsApi } from './support/fake-secrets-api.js';
import { writeKubeconfig } from './support/kubeconfig.js';

const identityOf = (r: CheckResult) => structToJs(r.raw['dynamicMetadata'] as never)['identity'] as Record<string, unknown>;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function tempFile(name: string, text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-apikey-')), name);
  fs.writeFileSync(file, text);
  return file;
}

function policy(name: string, host: string, apiKey: string, extra = ''): string {
  return `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: ${name}
${extra}spec:
  hosts: [${host}]
  authentication:
    key:
      apiKey:
${apiKey
  .trim()
  .split('\n')
  .map((l) => `        ${l}`)
  .join('\n')}
      credentials:
        authorizationHeader:
          prefix: APIKEY
  response:
    success:
      dynamicMetadata:
        identity: auth.identity
---
`;
}

describe('keys from a file', () => {
  let s: TestServer;

  beforeAll(async () => {
    const yamlFile = tempFile(
      'keys.yaml',
      `- key: plain-key-1\n  name: team-search\n  labels: {tier: gold}\n- sha256: ${sha256('digest-key-2')}\n  name: team-ads\n`,
    );
    const jsonFile = tempFile('keys.json', JSON.stringify({ keys: [{ key: 'json-key-3', name: 'team-json' }] }));
    s = await startTestServer({
      files: { 'p.yaml': policy('file-keys', 'keys.example.com', `file: ${yamlFile}`) + policy('json-keys', 'json.example.com', `file: ${jsonFile}`) },
    });
  });
  afterAll(() => s?.close());

  it('accepts a plain key and one given as its SHA-256, naming the owner', async () => {
    const a = await s.client.check({ host: 'keys.example.com', headers: { authorization: 'APIKEY plain-key-1' } });
    const b = await s.client.check({ host: 'keys.example.com', headers: { authorization: 'APIKEY digest-key-2' } });
    expect([a.httpStatus, b.httpStatus]).toEqual([200, 200]);
    expect(identityOf(a)).toEqual({
      source: 'file',
      name: 'team-search',
      namespace: '',
      labels: { tier: 'gold' },
      annotations: {},
      metadata: { name: 'team-search', namespace: '', labels: { tier: 'gold' }, annotations: {} },
      username: 'team-search',
    });
    expect(identityOf(b)['name']).toBe('team-ads');
  });

  it('reads JSON key files too', async () => {
    const r = await s.client.check({ host: 'json.example.com', headers: { authorization: 'APIKEY json-key-3' } });
    expect(identityOf(r)['name']).toBe('team-json');
  });

  it('answers 401 for a wrong key, a key of another policy, and a missing one', async () => {
    const wrong = await s.client.check({ host: 'keys.example.com', headers: { authorization: 'APIKEY plain-key-X' } });
    const other = await s.client.check({ host: 'keys.example.com', headers: { authorization: 'APIKEY json-key-3' } });
    const missing = await s.client.check({ host: 'keys.example.com' });
    expect([wrong.httpStatus, other.httpStatus, missing.httpStatus]).toEqual([401, 401, 401]);
    expect(wrong.headers.find((h) => h.key === 'www-authenticate')?.value).toBe('APIKEY realm="egress-authz", error="invalid_token"');
    expect(missing.headers.find((h) => h.key === 'www-authenticate')?.value).toBe('APIKEY realm="egress-authz"');
    expect(s.logs.some((l) => l.includes('plain-key-X') || l.includes('plain-key-1'))).toBe(false);
  });

  it('finds keys by comparing digests, returning the first match or nothing', () => {
    const entry = (key: string, label: string) => ({ digest: createHash('sha256').update(key).digest(), identity: {}, label });
    const entries = [entry('a', 'first'), entry('b', 'second'), entry('a', 'duplicate')];
    expect(findKey(entries, 'a')?.label).toBe('first');
    expect(findKey(entries, 'b')?.label).toBe('second');
    expect(findKey(entries, 'c')).toBeUndefined();
    expect(findKey([], 'a')).toBeUndefined();
  });
});

describe('keys from Kubernetes Secrets selected by label', () => {
  let api: FakeSecretsApi;
  let s: TestServer;

  beforeAll(async () => {
    api = await startFakeSecretsApi([
      { namespace: 'gateway-system', name: 'partner-a', labels: { app: 'partners' }, annotations: { owner: 'a@example.com' }, data: { api_key: 'secret-key-a' } },
      { namespace: 'gateway-system', name: 'unrelated', labels: { app: 'other' }, data: { api_key: 'secret-key-other' } },
      { namespace: 'elsewhere', name: 'partner-b', labels: { app: 'partners' }, data: { api_key: 'secret-key-b' } },
      { namespace: 'gateway-system', name: 'no-key-field', labels: { app: 'partners' }, data: { token: 'x' } },
    ]);
    const ns = '  namespace: gateway-system\n';
    s = await startTestServer({
      files: {
        'p.yaml':
          policy('ns-keys', 'ns.example.com', 'selector:\n  matchLabels: {app: partners}', ns) +
          policy('all-keys', 'all.example.com', 'selector:\n  matchLabels: {app: partners}\nallNamespaces: true'),
      },
      config: { kubeconfig: writeKubeconfig(api), checkDeadlineMs: 1000 },
    });
    await s.app.services.warm();
  });
  afterAll(async () => {
    await s?.close();
    await api?.close();
  });

  it('lists Secrets once per selector and namespace, right after the policies loaded', () => {
    expect(api.calls.list).toBe(2);
    expect(api.selectors).toEqual(['app=partners', 'app=partners']);
  });

  it("accepts a Secret's api_key from the policy's namespace and exposes the Secret's metadata", async () => {
    const r = await s.client.check({ host: 'ns.example.com', headers: { authorization: 'APIKEY secret-key-a' } });
    expect(r.httpStatus).toBe(200);
    expect(identityOf(r)).toMatchObject({
      source: 'secret',
      name: 'partner-a',
      namespace: 'gateway-system',
      metadata: { labels: { app: 'partners' }, annotations: { owner: 'a@example.com' } },
    });
  });

  it('ignores Secrets from other namespaces or with other labels', async () => {
    for (const key of ['secret-key-b', 'secret-key-other']) {
      expect((await s.client.check({ host: 'ns.example.com', headers: { authorization: `APIKEY ${key}` } })).httpStatus).toBe(401);
    }
  });

  it('with allNamespaces, accepts keys from every namespace', async () => {
    const r = await s.client.check({ host: 'all.example.com', headers: { authorization: 'APIKEY secret-key-b' } });
    expect(r.httpStatus).toBe(200);
    expect(identityOf(r)['namespace']).toBe('elsewhere');
  });

  it('answers 503 when the Secrets could never be listed', async () => {
    const down = await startFakeSecretsApi();
    const config = writeKubeconfig(down);
    await down.stop();
    const t = await startTestServer({ files: { 'p.yaml': policy('down', 'down.example.com', 'selector:\n  matchLabels: {app: x}\nallNamespaces: true') }, config: { kubeconfig: config } });
    try {
      await t.app.services.warm();
      const r = await t.client.check({ host: 'down.example.com', headers: { authorization: 'APIKEY anything' } });
      expect(r.httpStatus).toBe(503);
      expect(JSON.parse(r.body).reason).toContain('API key Secrets unavailable');
    } finally {
      await t.close();
    }
  });
});

describe('load-time validation', () => {
  function load(apiKey: string): string {
    const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
    const r = loadPolicyDirectory(makePolicyDir({ 'p.yaml': policy('bad', 'bad.example.com', apiKey) }), services);
    void services.close();
    return r.ok ? '' : r.diagnostics.map(formatDiagnostic).join('\n');
  }

  it('names the bad entry of a key file without quoting any key', () => {
    const file = tempFile('keys.yaml', '- key: leaked-if-quoted\n- key: second-secret-key\n  sha256: abc\n  name: both\n');
    const errors = load(`file: ${file}`);
    expect(errors).toContain('entry 1: name is required');
    expect(errors).toContain('entry 2 (both): give exactly one of key or sha256');
    expect(errors).not.toContain('leaked-if-quoted');
    expect(errors).not.toContain('second-secret-key');
  });

  it('requires exactly one source, and a namespace for a selector', () => {
    expect(load('namespace: x')).toContain('give exactly one of file');
    expect(load('selector:\n  matchLabels: {app: x}')).toContain('give namespace, or allNamespaces: true');
    expect(load('selector: {}\nallNamespaces: true')).toContain('selects every Secret');
    expect(load(`file: ${path.join(os.tmpdir(), 'does-not-exist.yaml')}`)).toContain('cannot read (ENOENT)');
  });
});
