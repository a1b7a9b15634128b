// The first-class `vault` source against the fake Vault (which verifies logins through the fake
// kube-apiserver's TokenReview, as real Vault does). Each test gets fresh Services, so fresh caches.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { startFakeVault, type FakeVault } from '../support/fake-vault.js';
import { compile, harness, run, type Harness } from './harness.js';

let kube: FakeKubeApiserver;
let vault: FakeVault;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  vault = await startFakeVault({ kube });
  vault.addPolicy('egress-read', [{ path: 'secret/data/egress/*', capabilities: ['read'] }]);
  vault.addPolicy('egress-read-v1', [{ path: 'kv1/egress/*', capabilities: ['read'] }]);
  vault.addRole('kubernetes', 'egress-workload', {
    boundServiceAccountNames: ['*'],
    boundServiceAccountNamespaces: ['team-a', 'team-b', 'team-c'],
    policies: ['egress-read', 'egress-read-v1'],
  });
  vault.addRole('kubernetes', 'short-lease', {
    boundServiceAccountNames: ['*'],
    boundServiceAccountNamespaces: ['team-a'],
    policies: ['egress-read'],
    ttlSeconds: 1,
  });
  vault.putSecret('secret', 'egress/team-a/client', { api_key: 'sk-team-a-0001' });
  vault.putSecret('secret', 'egress/team-b/client', { api_key: 'sk-team-b-0001' });
  vault.putSecret('secret', 'egress/team-c/client', { api_key: 'sk-team-c-0001' });
  vault.enableKvV1('kv1');
  vault.putSecret('kv1', 'egress/team-a/client', { api_key: 'sk-team-a-v1' });
  for (const ns of ['team-a', 'team-b', 'team-c', 'default']) tokens[ns] = kube.issueToken({ namespace: ns, serviceAccount: 'client' });
});
afterAll(async () => {
  await vault.close();
  await kube.close();
});

let h: Harness;
beforeEach(async () => {
  await vault.start();
  vault.setFailure('none');
  vault.setLatencyMs(0);
  vault.resetCounters();
  h = harness();
});

const PATH = `'"egress/" + auth.identity.namespace + "/" + auth.identity.serviceAccount'`;

function stageOf(extra = '', h2 = h) {
  const { stage, errors } = compile(
    `
openai:
  vault:
    addr: ${vault.url}
    auth:
      kubernetes:
        role: egress-workload
    path: ${PATH}
${extra.replace(/^/gm, '    ')}
`,
    h2,
  );
  expect(errors).toEqual([]);
  return stage!;
}

const as = (ns: string, deadlineMs = 2000) => ({
  credential: tokens[ns],
  identity: { namespace: ns, serviceAccount: 'client' },
  deadlineMs,
});

describe('vault source', () => {
  it('logs in as the workload and exposes the secret, its version and path', async () => {
    const { decision, ctx } = await run(stageOf(), as('team-a'));
    expect(decision).toBeUndefined();
    expect(ctx.auth.metadata['openai']).toMatchObject({
      data: { api_key: 'sk-team-a-0001' },
      version: 1n,
      path: 'egress/team-a/client',
    });
    expect(vault.calls).toMatchObject({ login: 1, read: 1 });
    // The Vault token and the secret's values are scrubbed from this Check's logs.
    expect(ctx.secrets).toContain('sk-team-a-0001');
    expect(ctx.secrets.some((s) => vault.tokensIssued().includes(s))).toBe(true);
  });

  it('never sends a credential that is not a ServiceAccount token (an API key, say) to Vault', async () => {
    vault.resetCounters();
    const { decision } = await run(stageOf(), { ...as('team-a'), serviceAccountToken: false });
    expect(decision).toMatchObject({ kind: 'deny', status: 403 });
    expect(vault.calls).toMatchObject({ login: 0, read: 0 });
  });

  it('gives each team its own key', async () => {
    const stage = stageOf();
    const a = await run(stage, as('team-a'));
    const b = await run(stage, as('team-b'));
    expect((a.ctx.auth.metadata['openai'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-a-0001' });
    expect((b.ctx.auth.metadata['openai'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-b-0001' });
  });

  it('makes zero Vault calls for a warm identity until the TTL', async () => {
    const stage = stageOf();
    await run(stage, as('team-a'));
    vault.resetCounters();
    for (let i = 0; i < 5; i++) {
      const { ctx } = await run(stage, as('team-a'));
      expect((ctx.auth.metadata['openai'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-a-0001' });
    }
    expect(vault.calls).toMatchObject({ login: 0, read: 0 });
  });

  it('coalesces 50 concurrent cold Checks of one identity into 1 login and 1 read', async () => {
    const stage = stageOf();
    const runs = await Promise.all(Array.from({ length: 50 }, () => run(stage, as('team-a', 5000))));
    expect(runs.filter((r) => r.decision === undefined)).toHaveLength(50);
    expect(vault.calls).toMatchObject({ login: 1, read: 1 });
  });

  it('serves a rotated key after the TTL, reusing the cached Vault token', async () => {
    vault.putSecret('secret', 'egress/team-c/client', { api_key: 'sk-team-c-0002' });
    const stage = stageOf('ttl: 300ms');
    const first = await run(stage, as('team-c'));
    expect((first.ctx.auth.metadata['openai'] as { version: bigint }).version).toBe(2n);
    vault.putSecret('secret', 'egress/team-c/client', { api_key: 'sk-team-c-0003' });
    const before = await run(stage, as('team-c'));
    expect((before.ctx.auth.metadata['openai'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-c-0002' });
    await new Promise((r) => setTimeout(r, 400));
    const after = await run(stage, as('team-c'));
    expect(after.ctx.auth.metadata['openai']).toMatchObject({ data: { api_key: 'sk-team-c-0003' }, version: 3n });
    expect(vault.calls).toMatchObject({ login: 1, read: 2 });
  });

  it('drops a token Vault no longer honours and logs in again once', async () => {
    const stage = stageOf('ttl: 100ms');
    await run(stage, as('team-a'));
    vault.expireAllTokens();
    await new Promise((r) => setTimeout(r, 150));
    const { decision, ctx } = await run(stage, as('team-a'));
    expect(decision).toBeUndefined();
    expect((ctx.auth.metadata['openai'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-a-0001' });
    // login, read | read (403), login, read
    expect(vault.calls).toMatchObject({ login: 2, read: 3 });
  });

  it('logs in again before the token lease ends, without waiting for a 403', async () => {
    const { stage } = compile(
      `s: {vault: {addr: ${vault.url}, auth: {kubernetes: {role: short-lease}}, path: ${PATH}, ttl: 100ms}}`,
      h,
    );
    await run(stage!, as('team-a'));
    await new Promise((r) => setTimeout(r, 1100));
    const { decision } = await run(stage!, as('team-a'));
    expect(decision).toBeUndefined();
    expect(vault.calls).toMatchObject({ login: 2, read: 2 });
  });

  it('reads KV v1 mounts', async () => {
    const { ctx, decision } = await run(stageOf('kv: {mount: kv1, version: 1}'), as('team-a'));
    expect(decision).toBeUndefined();
    expect(ctx.auth.metadata['openai']).toMatchObject({ data: { api_key: 'sk-team-a-v1' }, version: null });
  });

  it('uses the default Vault address from the server config', async () => {
    const h2 = harness({ vaultAddr: vault.url });
    const { stage, errors } = compile(`s: {vault: {auth: {kubernetes: {role: egress-workload}}, path: ${PATH}}}`, h2);
    expect(errors).toEqual([]);
    expect((await run(stage!, as('team-b'))).decision).toBeUndefined();
  });

  it('logs in with a token file (the server`s own ServiceAccount) for callers without a token', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-sa-'));
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, `${kube.issueToken({ namespace: 'team-b', serviceAccount: 'egress-authz' })}\n`);
    const { stage } = compile(
      `s: {vault: {addr: ${vault.url}, auth: {kubernetes: {role: egress-workload, jwt: {file: ${file}}}}, path: ${PATH}}}`,
      h,
    );
    const { decision, ctx } = await run(stage!, { identity: { namespace: 'team-a', serviceAccount: 'client' } });
    expect(decision).toBeUndefined();
    expect(ctx.secrets).toContain(fs.readFileSync(file, 'utf8').trim());
    expect((ctx.auth.metadata['s'] as { data: unknown }).data).toEqual({ api_key: 'sk-team-a-0001' });
  });
});

describe('vault source: refusals and failures', () => {
  it('denies 403 when Vault refuses the login (namespace not bound), and remembers it briefly', async () => {
    const stage = stageOf();
    const { decision } = await run(stage, as('default'));
    expect(decision).toMatchObject({ kind: 'deny', status: 403, evaluator: 'metadata' });
    expect(decision?.kind === 'deny' && decision.reason).toContain('namespace not authorized');
    await run(stage, as('default'));
    expect(vault.calls.login).toBe(1);
  });

  it('denies 403 when the secret is missing, naming the path and no secret value', async () => {
    const { stage } = compile(
      `s: {vault: {addr: ${vault.url}, auth: {kubernetes: {role: egress-workload}}, path: '"egress/" + auth.identity.namespace + "/missing"'}}`,
      h,
    );
    const { decision } = await run(stage!, as('team-a'));
    expect(decision).toMatchObject({ kind: 'deny', status: 403 });
    const reason = decision?.kind === 'deny' ? decision.reason : '';
    expect(reason).toContain('no secret in Vault at secret/egress/team-a/missing');
    for (const v of vault.secretValues()) expect(reason).not.toContain(v);
  });

  it('denies 403 when the policy does not permit the path', async () => {
    const { stage } = compile(`s: {vault: {addr: ${vault.url}, auth: {kubernetes: {role: egress-workload}}, path: '"other/x"'}}`, h);
    const { decision } = await run(stage!, as('team-a'));
    expect(decision).toMatchObject({ kind: 'deny', status: 403 });
    expect(decision?.kind === 'deny' && decision.reason).toContain('permission denied');
  });

  it('denies 403 when the identity gave no workload token to log in with', async () => {
    const { decision } = await run(stageOf(), { identity: { namespace: 'team-a', serviceAccount: 'client' } });
    expect(decision).toMatchObject({ kind: 'deny', status: 403 });
    expect(vault.calls.login).toBe(0);
  });

  it.each(['500', '503-sealed'] as const)('denies 503 when Vault answers %s, and does not cache it', async (failure) => {
    const stage = stageOf();
    vault.setFailure(failure);
    expect((await run(stage, as('team-a'))).decision).toMatchObject({ kind: 'deny', status: 503 });
    vault.setFailure('none');
    expect((await run(stage, as('team-a'))).decision).toBeUndefined();
  });

  it('denies 503 when Vault is down', async () => {
    await vault.stop();
    const { decision } = await run(stageOf(), as('team-a'));
    expect(decision).toMatchObject({ kind: 'deny', status: 503 });
    expect(decision?.kind === 'deny' && decision.reason).toMatch(/Vault unavailable .*(ECONNREFUSED|UND_ERR_SOCKET)/);
  });

  it('denies 503 within the deadline when Vault is slow, and the late answer still warms the cache', async () => {
    const stage = stageOf('timeout: 5s');
    vault.setLatencyMs(300);
    const { decision, elapsedMs } = await run(stage, as('team-a', 100));
    expect(decision).toMatchObject({ kind: 'deny', status: 503 });
    expect(decision?.kind === 'deny' && decision.reason).toContain('within the deadline');
    // The Check gave up at its deadline, long before Vault's two slow answers (login + read).
    expect(elapsedMs).toBeLessThan(600);
    await new Promise((r) => setTimeout(r, 800));
    vault.setLatencyMs(0);
    vault.resetCounters();
    expect((await run(stage, as('team-a', 100))).decision).toBeUndefined();
    expect(vault.calls).toMatchObject({ login: 0, read: 0 });
  });

  it('never logs a Vault token, a secret value or a ServiceAccount token', async () => {
    const stage = stageOf();
    await run(stage, as('team-a'));
    await run(stage, as('default'));
    await run(compile(`s: {vault: {addr: ${vault.url}, auth: {kubernetes: {role: egress-workload}}, path: '"egress/x/missing"'}}`, h).stage!, as('team-a'));
    const all = h.logs.join('\n');
    for (const secret of [...vault.tokensIssued(), ...vault.secretValues(), ...Object.values(tokens)]) expect(all).not.toContain(secret);
  });

  it('counts Vault calls and cache events in metrics', async () => {
    const stage = stageOf();
    await run(stage, as('team-a'));
    await run(stage, as('team-a'));
    const text = await h.metrics.registry.metrics();
    expect(text).toMatch(/egress_authz_backend_calls_total\{backend="vault",outcome="ok"\} 2/);
    expect(text).toMatch(/egress_authz_cache_events_total\{cache="vault_secret",event="hit"\} 1/);
  });
});

describe('vault source: load errors', () => {
  it.each([
    [`s: {vault: {auth: {kubernetes: {role: r}}, path: '"p"'}}`, /vault.addr is required/],
    [`s: {vault: {addr: http://v:8200, path: '"p"'}}`, /auth.kubernetes is required/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {mount: k}}, path: '"p"'}}`, /role is required/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r}}}}`, /vault.path is required/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r}}, path: '1'}}`, /path: expression must return string/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r}}, path: '"p"', kv: {version: 3}}}`, /kv.version: 1 or 2/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r, jwt: mine}}, path: '"p"'}}`, /jwt: one of workload, serviceAccount/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r}}, path: '"p"'}, cache: {key: {value: k}}}`, /caches by itself/],
    [`s: {vault: {addr: http://v:8200, auth: {kubernetes: {role: r}}, path: '"p"', tll: 5s}}`, /unknown field "tll".*did you mean "ttl"/],
  ])('%s', (text, message) => {
    const { errors } = compile(text, harness());
    expect(errors.join('\n')).toMatch(message);
  });
});
