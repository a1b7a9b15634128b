// The identity examples and every policy in docs/identity.md load as written, and the examples behave as
// their comments say against the fake kube-apiserver.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Services } from '../../src/pipeline/services.js';
import { formatDiagnostic } from '../../src/policy/diagnostics.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { writeKubeconfig } from './support/kubeconfig.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EXAMPLES = path.join(ROOT, 'examples/identity');

/** Loads a directory as `lint` does: compiles everything, starts no network work. */
function lint(dir: string): string[] {
  const services = new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics());
  const r = loadPolicyDirectory(dir, services);
  void services.close();
  return r.ok ? [] : r.diagnostics.map(formatDiagnostic);
}

describe('documents load as written', () => {
  it('examples/identity', () => {
    expect(lint(EXAMPLES)).toEqual([]);
  });

  const docs = fs.readFileSync(path.join(ROOT, 'docs/identity.md'), 'utf8');
  const blocks = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^apiVersion:/m.test(b));

  it('docs/identity.md has policy examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  it.each(blocks.map((b, i) => [i + 1, b] as const))('docs/identity.md policy block %i', (_n, block) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-docs-'));
    fs.writeFileSync(path.join(dir, 'policy.yaml'), block);
    fs.copyFileSync(path.join(EXAMPLES, 'partner-keys.json'), path.join(dir, 'partner-keys.json'));
    expect(lint(dir)).toEqual([]);
  });
});

describe('the examples behave as described', () => {
  let kube: FakeKubeApiserver;
  let s: TestServer;

  beforeAll(async () => {
    kube = await startFakeKubeApiserver();
    // jwt-oidc.yaml names an external identity provider: tests stay on loopback.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-examples-'));
    for (const f of fs.readdirSync(EXAMPLES)) if (f !== 'jwt-oidc.yaml') fs.copyFileSync(path.join(EXAMPLES, f), path.join(dir, f));
    s = await startTestServer({
      policiesDir: dir,
      config: { kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }), checkDeadlineMs: 1000 },
    });
    await s.app.services.warm();
  });
  afterAll(async () => {
    await s?.close();
    await kube?.close();
  });

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  it('token-review.yaml', async () => {
    const ok = await s.client.check({ host: 'api.anthropic.com', headers: bearer(kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'chatbot' })) });
    expect(ok.httpStatus).toBe(200);
    expect(ok.headers.find((h) => h.key === 'x-egress-workload')?.value).toBe('ai-workloads/chatbot');
    expect(ok.headersToRemove).toContain('authorization');
    const other = await s.client.check({ host: 'api.anthropic.com', headers: bearer(kube.issueToken({ namespace: 'default', serviceAccount: 'default' })) });
    expect(other.httpStatus).toBe(403);
  });

  it('jwt-kubernetes.yaml (no TokenReview)', async () => {
    kube.resetCounters();
    const token = kube.issueToken({ namespace: 'search', serviceAccount: 'indexer', audiences: ['egress-authz'] });
    expect((await s.client.check({ host: 'api.search.example.com', headers: bearer(token) })).httpStatus).toBe(200);
    const wrongAudience = kube.issueToken({ namespace: 'search', serviceAccount: 'indexer' });
    expect((await s.client.check({ host: 'api.search.example.com', headers: bearer(wrongAudience) })).httpStatus).toBe(401);
    expect(kube.calls.tokenReviews).toBe(0);
  });

  it('spiffe.yaml', async () => {
    expect((await s.client.check({ host: 'api.github.com', principal: 'spiffe://cluster.local/ns/ci/sa/runner' })).httpStatus).toBe(200);
    expect((await s.client.check({ host: 'api.github.com', principal: 'spiffe://cluster.local/ns/dev/sa/runner' })).httpStatus).toBe(403);
  });

  it('api-keys.yaml', async () => {
    expect((await s.client.check({ host: 'api.partner.example.com', headers: { 'x-api-key': 'acme-demo-key-0001' } })).httpStatus).toBe(200);
    expect((await s.client.check({ host: 'api.partner.example.com', headers: { 'x-api-key': 'globex-demo-key-0002' } })).httpStatus).toBe(403);
  });

  it('layered.yaml', async () => {
    kube.resetCounters();
    expect((await s.client.check({ host: 'api.openai.example.com', principal: 'spiffe://cluster.local/ns/ai-workloads/sa/a' })).httpStatus).toBe(200);
    const apiAudience = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'a' });
    expect((await s.client.check({ host: 'api.openai.example.com', headers: bearer(apiAudience) })).httpStatus).toBe(200);
    expect(kube.calls.tokenReviews).toBe(0);
    const egressAudience = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'a', audiences: ['egress-authz'] });
    expect((await s.client.check({ host: 'api.openai.example.com', headers: bearer(egressAudience) })).httpStatus).toBe(200);
    expect(kube.calls.tokenReviews).toBe(1);
  });
});
