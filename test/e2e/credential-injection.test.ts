// Credential injection from Vault end to end: real gRPC Checks against egress-authz, whose policies
// authenticate workloads through the fake kube-apiserver (TokenReview over HTTPS) and fetch their API keys
// from the fake Vault (which verifies each login through the same apiserver, as real Vault does).
//
// Two servers: one runs the seed AuthPolicy verbatim (only its Vault URL points at the fake), the other the
// examples/vault policies written with the first-class `vault` source.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/cli/check-client.js';
import { writeKubeconfig } from '../identity/support/kubeconfig.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { allowEgressReads, startFakeVault, type FakeVault } from '../support/fake-vault.js';
import { seedPolicy, startTestServer, type TestServer } from '../support/test-server.js';

const SEED_VAULT = 'http://vault.vault.svc.cluster.local:8200';
const EXAMPLES = path.resolve(import.meta.dirname, '../../examples/vault');
const DEADLINE_MS = 1500;

let kube: FakeKubeApiserver;
let vault: FakeVault;
let seedServer: TestServer;
let vaultServer: TestServer;
/** SA tokens by "<namespace>/<serviceaccount>". */
const sa: Record<string, string> = {};

function token(ns: string, name = 'client'): string {
  const key = `${ns}/${name}`;
  sa[key] ??= kube.issueToken({ namespace: ns, serviceAccount: name });
  return sa[key];
}

function pointAtFakeVault(text: string): string {
  return text.replaceAll(SEED_VAULT, vault.url);
}

function example(name: string): string {
  return fs.readFileSync(path.join(EXAMPLES, name), 'utf8');
}

/** A test-only policy with a short secret TTL, for rotation. */
const ROTATION_POLICY = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: rotation}
spec:
  hosts: [rotation.example.com]
  authentication:
    workload-identity:
      kubernetesTokenReview:
        audiences: ["https://kubernetes.default.svc.cluster.local"]
  metadata:
    key:
      vault:
        addr: ${SEED_VAULT}
        auth: {kubernetes: {role: egress-workload}}
        path: '"egress/" + auth.identity.namespace + "/" + auth.identity.serviceAccount + "/rotating"'
        ttl: 1s
  response:
    success:
      headers:
        authorization: '"Bearer " + auth.metadata.key.data.api_key'
`;

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  vault = await startFakeVault({ kube });
  allowEgressReads(vault, ['team-a', 'team-b']);
  for (const ns of ['team-a', 'team-b']) {
    vault.putSecret('secret', `egress/${ns}/client`, { api_key: `sk-openai-${ns}-7f3a9c` });
    vault.putSecret('secret', `egress/${ns}/client/anthropic`, { api_key: `sk-ant-${ns}-51d2e0` });
    vault.putSecret('secret', `egress/${ns}/client/azure`, { api_key: `azure-${ns}-0c9b44` });
  }
  for (const name of ['burst', 'slow', 'down']) vault.putSecret('secret', `egress/team-b/${name}`, { api_key: `sk-openai-team-b-${name}-e81f` });
  vault.putSecret('secret', 'egress/team-a/rotor/rotating', { api_key: 'sk-rotating-v1-aa11' });

  const kubeconfig = writeKubeconfig({ url: kube.url, caPem: kube.caPem, token: kube.reviewerToken });
  const config = { kubeconfig, checkDeadlineMs: DEADLINE_MS };
  seedServer = await startTestServer({
    files: {
      'route.yaml': seedPolicy('openai-external-httproute.yaml'),
      'injection.yaml': pointAtFakeVault(seedPolicy('openai-credential-injection.yaml')),
    },
    config,
  });
  vaultServer = await startTestServer({
    files: {
      'openai.yaml': pointAtFakeVault(example('openai-vault-source.yaml')),
      'anthropic.yaml': pointAtFakeVault(example('anthropic-x-api-key.yaml')),
      'azure.yaml': pointAtFakeVault(example('azure-openai-api-key.yaml')),
      'rotation.yaml': pointAtFakeVault(ROTATION_POLICY),
    },
    config,
  });
  // The Kubernetes client loads lazily after a policy load; wait for it as a started pod would (readiness),
  // then open the TLS connections once (a workload with no secret: 403), so cold-path tests time Vault only.
  await Promise.all([seedServer.app.services.warm(), vaultServer.app.services.warm()]);
  await Promise.all([openai(seedServer, token('team-a', 'warm-up')), openai(vaultServer, token('team-a', 'warm-up'))]);
});

afterAll(async () => {
  await seedServer?.close();
  await vaultServer?.close();
  await vault?.close();
  await kube?.close();
});

beforeEach(async () => {
  await vault.start();
  vault.setFailure('none');
  vault.setLatencyMs(0);
  vault.resetCounters();
});

function header(r: CheckResult, key: string) {
  return r.headers.find((h) => h.key === key);
}

function openai(server: TestServer, sat: string | undefined, extra: Record<string, string> = {}): Promise<CheckResult> {
  return server.client.check({
    host: 'api.openai.com',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { ...(sat ? { authorization: `Bearer ${sat}` } : {}), ...extra },
  });
}

describe('the seed AuthPolicy, verbatim (http metadata: vault_login → vault_secret)', () => {
  it.each(['team-a', 'team-b'])('injects %s its own key from secret/egress/<ns>/<sa>, replacing its token', async (ns) => {
    const r = await openai(seedServer, token(ns));
    expect(r.allowed).toBe(true);
    expect(header(r, 'authorization')).toEqual({
      key: 'authorization',
      value: `Bearer sk-openai-${ns}-7f3a9c`,
      appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD',
      append: false,
    });
    // Authorization is overwritten, so nothing else carries the workload's token: nothing to remove.
    expect(r.headersToRemove).toEqual([]);
    // No cache block in the seed: every Check logs in and reads.
    expect(vault.calls).toMatchObject({ login: 1, read: 1 });
  });

  it('denies the default namespace (Vault refuses the login) with 403', async () => {
    const r = await openai(seedServer, token('default'));
    expect(r.allowed).toBe(false);
    expect(r.httpStatus).toBe(403);
    expect(vault.calls).toMatchObject({ login: 1, read: 0 });
  });

  it('denies a workload without a secret with 403, naming no secret value', async () => {
    const r = await openai(seedServer, token('team-a', 'no-secret'));
    expect(r.httpStatus).toBe(403);
    expect(r.body).toContain('vault_credential_check');
    for (const v of vault.secretValues()) expect(r.body).not.toContain(v);
    expect(vault.calls).toMatchObject({ login: 1, read: 1 });
  });

  it('answers 401 without a workload token and never calls Vault', async () => {
    const r = await openai(seedServer, undefined);
    expect(r.httpStatus).toBe(401);
    expect(vault.calls).toMatchObject({ login: 0, read: 0 });
  });

  it('denies 503 when Vault answers 5xx', async () => {
    vault.setFailure('503-sealed');
    const r = await openai(seedServer, token('team-a'));
    expect(r.httpStatus).toBe(503);
  });

  it('denies 503 when Vault is down', async () => {
    await vault.stop();
    const r = await openai(seedServer, token('team-a'));
    expect(r.httpStatus).toBe(503);
  });

  it('denies 503 within the deadline when Vault is slow', async () => {
    await openai(seedServer, token('team-b')); // the TokenReview verdict is cached: only Vault is slow now
    vault.setLatencyMs(DEADLINE_MS * 3);
    const t0 = performance.now();
    const r = await openai(seedServer, token('team-b'));
    expect(r.httpStatus).toBe(503);
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS * 2);
  });
});

describe('the same flow with the vault source (examples/vault)', () => {
  it('is written in fewer lines than the seed', () => {
    const lines = (text: string) => text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).length;
    expect(lines(example('openai-vault-source.yaml'))).toBeLessThan(lines(seedPolicy('openai-credential-injection.yaml')));
  });

  it.each(['team-a', 'team-b'])('injects %s its own key', async (ns) => {
    const r = await openai(vaultServer, token(ns));
    expect(r.allowed).toBe(true);
    expect(header(r, 'authorization')).toMatchObject({ value: `Bearer sk-openai-${ns}-7f3a9c`, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  });

  it('denies the default namespace with 403, saying why', async () => {
    const r = await openai(vaultServer, token('default'));
    expect(r.httpStatus).toBe(403);
    expect(r.body).toContain('namespace not authorized');
  });

  it('makes zero Vault calls for a warm identity until the TTL', async () => {
    await openai(vaultServer, token('team-a'));
    vault.resetCounters();
    for (let i = 0; i < 10; i++) {
      const r = await openai(vaultServer, token('team-a'));
      expect(header(r, 'authorization')?.value).toBe('Bearer sk-openai-team-a-7f3a9c');
    }
    expect(vault.calls).toMatchObject({ login: 0, read: 0 });
  });

  it('turns 50 concurrent first requests of one identity into 1 login and 1 read', async () => {
    const burst = token('team-b', 'burst');
    const results = await Promise.all(Array.from({ length: 50 }, () => openai(vaultServer, burst)));
    expect(results.filter((r) => r.allowed)).toHaveLength(50);
    expect(new Set(results.map((r) => header(r, 'authorization')?.value))).toEqual(new Set(['Bearer sk-openai-team-b-burst-e81f']));
    expect(vault.calls).toMatchObject({ login: 1, read: 1 });
  });

  it('serves a rotated key after the TTL, without a restart', async () => {
    const check = () => vaultServer.client.check({ host: 'rotation.example.com', headers: { authorization: `Bearer ${token('team-a', 'rotor')}` } });
    expect(header(await check(), 'authorization')?.value).toBe('Bearer sk-rotating-v1-aa11');
    vault.putSecret('secret', 'egress/team-a/rotor/rotating', { api_key: 'sk-rotating-v2-bb22' });
    // Within the TTL the cached key is still served...
    expect(header(await check(), 'authorization')?.value).toBe('Bearer sk-rotating-v1-aa11');
    // ...and once it passes, the new version, with the Vault token still cached (no second login).
    let latest = '';
    for (let i = 0; i < 40 && latest !== 'Bearer sk-rotating-v2-bb22'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      latest = header(await check(), 'authorization')?.value ?? '';
    }
    expect(latest).toBe('Bearer sk-rotating-v2-bb22');
    expect(vault.calls).toMatchObject({ login: 1, read: 2 });
  });

  it('denies 503 when Vault is down', async () => {
    await vault.stop();
    const r = await openai(vaultServer, token('team-b', 'down'));
    expect(r.httpStatus).toBe(503);
    expect(r.body).toContain('Vault unavailable');
  });

  it('denies 503 within the deadline when Vault is slow', async () => {
    const slow = token('team-b', 'slow');
    vault.setLatencyMs(DEADLINE_MS * 3);
    const t0 = performance.now();
    const r = await openai(vaultServer, slow);
    expect(r.httpStatus).toBe(503);
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS * 2);
    // The source stops waiting just before the deadline, so the answer says which backend was slow.
    expect(JSON.parse(r.body).reason).toContain('Vault gave no answer within the deadline');
  });

  it('sets x-api-key for Anthropic and removes the workload`s Authorization', async () => {
    const r = await vaultServer.client.check({
      host: 'api.anthropic.com',
      method: 'POST',
      path: '/v1/messages',
      headers: { authorization: `Bearer ${token('team-a')}` },
    });
    expect(r.allowed).toBe(true);
    expect(header(r, 'x-api-key')).toMatchObject({ value: 'sk-ant-team-a-51d2e0', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    expect(r.headersToRemove).toEqual(['authorization']);
  });

  it('sets api-key for Azure OpenAI and removes the custom header that carried the workload token', async () => {
    const r = await vaultServer.client.check({
      host: 'myresource.openai.azure.com',
      method: 'POST',
      path: '/openai/deployments/gpt-4o/chat/completions',
      headers: { 'x-workload-token': token('team-b') },
    });
    expect(r.allowed).toBe(true);
    expect(header(r, 'api-key')).toMatchObject({ value: 'azure-team-b-0c9b44', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    expect(r.headersToRemove).toEqual(['x-workload-token']);
  });
});

describe('secrets stay out of logs', () => {
  it('no log line of either server (debug level) holds a Vault token, a secret value or a ServiceAccount token', async () => {
    // A few more Checks of every outcome, so that every path has logged something.
    await openai(seedServer, token('team-a'));
    await openai(vaultServer, token('team-a'));
    await openai(seedServer, token('default'));
    await openai(vaultServer, token('team-a', 'no-secret'));
    vault.setFailure('500');
    await openai(seedServer, token('team-b'));
    await openai(vaultServer, token('team-b', 'client'));
    const logs = [...seedServer.logs, ...vaultServer.logs];
    expect(logs.some((l) => l.includes('"decision"'))).toBe(true);
    const secrets = [...vault.tokensIssued(), ...vault.secretValues(), ...Object.values(sa)];
    expect(secrets.length).toBeGreaterThan(20);
    const leaks = secrets.filter((s) => logs.some((l) => l.includes(s)));
    // On failure, show the offending lines with each leaked value shortened to a recognisable prefix.
    const offending = logs
      .filter((l) => leaks.some((s) => l.includes(s)))
      .map((l) => leaks.reduce((line, s) => line.split(s).join(`<LEAK ${s.slice(0, 8)}…>`), l));
    expect(offending).toEqual([]);
  });
});
