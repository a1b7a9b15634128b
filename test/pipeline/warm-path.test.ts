// The warm path: once the identity's TokenReview verdict, its Vault token and its secret are cached, a Check
// is decided synchronously (no promise, so the gRPC handler answers in the same tick), with the same answer
// the first, asynchronous Check got. A cold Check, or one whose cache entry expired, still waits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCheckRequest } from '../../src/cli/check-client.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../../src/envoy/codec.js';
import { toRequestView } from '../../src/envoy/request.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Authorizer, type CheckOutcome } from '../../src/pipeline/authorizer.js';
import { Services } from '../../src/pipeline/services.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { allowEgressReads, startFakeVault, type FakeVault } from '../support/fake-vault.js';
import { writeKubeconfig } from '../identity/support/kubeconfig.js';

let kube: FakeKubeApiserver;
let vault: FakeVault;
let dir: string;

const policy = (vaultUrl: string) => `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: inject
spec:
  hosts: [api.openai.com]
  authentication:
    k8s:
      kubernetesTokenReview: {}
  metadata:
    vault_secret:
      vault:
        addr: ${vaultUrl}
        auth:
          kubernetes:
            role: egress-workload
        path: '"egress/" + auth.identity.namespace + "/" + auth.identity.serviceAccount'
  authorization:
    team: auth.identity.namespace == "team-a"
  response:
    success:
      headers:
        authorization: '"Bearer " + auth.metadata.vault_secret.data.api_key'
  rateLimits:
    per-sa:
      rates: [{limit: 1000, window: 1m}]
      counters: [auth.identity.username]
`;

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  vault = await startFakeVault({ kube });
  allowEgressReads(vault, ['team-a', 'team-b']);
  vault.putSecret('secret', 'egress/team-a/client', { api_key: 'sk-team-a-0001' });
  vault.putSecret('secret', 'egress/team-b/client', { api_key: 'sk-team-b-0001' });
  vault.putSecret('secret', 'egress/team-a/other', { api_key: 'sk-team-a-0002' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-warm-'));
  fs.writeFileSync(path.join(dir, 'inject.yaml'), policy(vault.url));
});
afterAll(async () => {
  await vault.close();
  await kube.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function viewFor(token: string) {
  const req = buildCheckRequest({ host: 'api.openai.com', method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${token}` } });
  return toRequestView(deserializeCheckRequest(serializeCheckRequest(req)));
}

async function authorizer(checkDeadlineMs = 1000): Promise<{ authorizer: Authorizer; services: Services }> {
  const services = new Services(
    { checkDeadlineMs, defaultDecision: 'deny', kubeconfig: writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken }) },
    silentLogger,
    new Metrics(),
  );
  const loaded = loadPolicyDirectory(dir, services);
  if (!loaded.ok) throw new Error(loaded.diagnostics.map((d) => d.message).join('\n'));
  await services.warm();
  return { authorizer: new Authorizer(services, () => loaded.set), services };
}

function injected(o: CheckOutcome): string | undefined {
  return o.decision.kind === 'allow' ? o.decision.headers.find((h) => h.key === 'authorization')?.value : undefined;
}

describe('warm Checks are decided synchronously', () => {
  it('identity, Vault and rate limit from cache: the second Check returns a decision, not a promise', async () => {
    const { authorizer: a, services } = await authorizer();
    try {
      const view = viewFor(kube.issueToken({ namespace: 'team-a', serviceAccount: 'client' }));
      const first = a.decide(view);
      expect(first).toBeInstanceOf(Promise);
      const cold = await first;
      expect(cold.decision.reason).toBe(cold.decision.kind === 'allow' ? cold.decision.reason : 'an allow');
      expect(injected(cold)).toBe('Bearer sk-team-a-0001');

      const before = { kube: { ...kube.calls }, vault: { ...vault.calls } };
      const warm = a.decide(view);
      expect(warm).not.toBeInstanceOf(Promise);
      const outcome = warm as CheckOutcome;
      expect(outcome.decision).toMatchObject({ kind: 'allow', identity: 'system:serviceaccount:team-a:client' });
      expect(injected(outcome)).toBe('Bearer sk-team-a-0001');
      // The rate limit's headers and the secrets to scrub are there as on the cold path.
      expect(outcome.decision.kind === 'allow' && outcome.decision.responseHeadersToAdd.map((h) => h.key)).toContain('ratelimit');
      expect(outcome.secrets).toContain('sk-team-a-0001');
      expect({ kube: { ...kube.calls }, vault: { ...vault.calls } }).toEqual(before);
    } finally {
      await services.close();
    }
  });

  it('a warm deny is synchronous too, and a new identity waits again', async () => {
    const { authorizer: a, services } = await authorizer();
    try {
      const teamB = viewFor(kube.issueToken({ namespace: 'team-b', serviceAccount: 'client' }));
      expect((await a.decide(teamB)).decision).toMatchObject({ kind: 'deny', status: 403, evaluator: 'authorization' });
      const again = a.decide(teamB);
      expect(again).not.toBeInstanceOf(Promise);
      expect((again as CheckOutcome).decision).toMatchObject({ kind: 'deny', status: 403 });

      const other = a.decide(viewFor(kube.issueToken({ namespace: 'team-a', serviceAccount: 'other' })));
      expect(other).toBeInstanceOf(Promise);
      expect(injected(await other)).toBe('Bearer sk-team-a-0002');
    } finally {
      await services.close();
    }
  });
});

describe('a Check answered 503 at its deadline is finished in the background', () => {
  it('a late TokenReview still leads to the Vault login and read, so the retry is warm and counted once', async () => {
    const { authorizer: a, services } = await authorizer(100);
    try {
      const view = viewFor(kube.issueToken({ namespace: 'team-a', serviceAccount: 'client', expiresInSeconds: 3600 }));
      vault.resetCounters();
      kube.setLatencyMs(150);
      const first = await a.decide(view);
      expect(first.decision).toMatchObject({ kind: 'deny', status: 503 });
      expect(first.decision.reason).toContain('TokenReview did not answer within the deadline');
      expect(vault.calls).toMatchObject({ login: 0, read: 0 });

      // No new Check: the abandoned TokenReview lands, then the background run logs in and reads the secret.
      for (let i = 0; i < 100 && vault.calls.read === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(vault.calls).toMatchObject({ login: 1, read: 1 });

      const retry = a.decide(view);
      expect(retry).not.toBeInstanceOf(Promise);
      const outcome = retry as CheckOutcome;
      expect(injected(outcome)).toBe('Bearer sk-team-a-0001');
      // The background run did not spend the rate limit: the retry is the first request counted.
      const header = outcome.decision.kind === 'allow' ? outcome.decision.responseHeadersToAdd.find((h) => h.key === 'ratelimit') : undefined;
      expect(header?.value).toMatch(/;r=999;/);
    } finally {
      kube.setLatencyMs(0);
      await services.close();
    }
  });

  it('a TokenReview that fails after the deadline is not asked again in the background', async () => {
    const { authorizer: a, services } = await authorizer(100);
    try {
      const view = viewFor(kube.issueToken({ namespace: 'team-a', serviceAccount: 'late-failure', expiresInSeconds: 3600 }));
      kube.resetCounters();
      vault.resetCounters();
      kube.setFailure('500');
      kube.setLatencyMs(150);
      const first = await a.decide(view);
      expect(first.decision).toMatchObject({ kind: 'deny', status: 503 });
      expect(kube.calls.tokenReviews).toBe(1);
      // The review fails once it lands (~50 ms after the deadline); give a background run time to start.
      await new Promise((r) => setTimeout(r, 400));
      expect(kube.calls.tokenReviews).toBe(1);
      expect(vault.calls).toMatchObject({ login: 0, read: 0 });
    } finally {
      kube.setFailure('none');
      kube.setLatencyMs(0);
      await services.close();
    }
  });
});
