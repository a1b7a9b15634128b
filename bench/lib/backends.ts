// The backends scenarios talk to: the test fakes (kube-apiserver, Vault) and a real redis-server, started in
// the harness process (the server under test runs in its own process and reaches them over loopback).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../../test/support/fake-kube-apiserver.js';
import { allowEgressReads, startFakeVault, type FakeVault } from '../../test/support/fake-vault.js';
import { startRedisServer, type RedisServerHandle } from '../../test/support/redis-server.js';

/** The namespace the seed's access-control predicate allows. */
export const WORKLOAD_NAMESPACE = 'ai-workloads';
/** The Vault role the seed's login body names. */
export const VAULT_ROLE = 'egress-workload';
/** Audience the seed's kubernetesTokenReview asks for (also the fake's issuer). */
export const SA_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

export function apiKeyFor(serviceAccount: string): string {
  return `sk-bench-${serviceAccount}-0123456789abcdef`;
}

export interface Backends {
  readonly kube: FakeKubeApiserver;
  readonly vault: FakeVault;
  /** kubeconfig pointing at the fake apiserver with the reviewer's token (for `serve --kubeconfig`). */
  readonly kubeconfigPath: string;
  /** Starts redis-server on first use. */
  redisUrl(): Promise<string>;
  /**
   * A ServiceAccount token for ai-workloads/<sa> whose Vault secret exists (created on first use).
   * RS256 is what kube-apiserver signs with by default; ES256 signs ~30× faster, for bulk identities.
   */
  workloadToken(serviceAccount: string, alg?: 'RS256' | 'ES256'): string;
  close(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const kube = await startFakeKubeApiserver();
  const vault = await startFakeVault({ kube });
  allowEgressReads(vault, [WORKLOAD_NAMESPACE], VAULT_ROLE);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-bench-kube-'));
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, kubeconfig(kube), { mode: 0o600 });
  const secretsWritten = new Set<string>();
  let redis: RedisServerHandle | undefined;
  return {
    kube,
    vault,
    kubeconfigPath,
    async redisUrl() {
      redis ??= await startRedisServer();
      return redis.url;
    },
    workloadToken(serviceAccount, alg = 'RS256') {
      if (!secretsWritten.has(serviceAccount)) {
        vault.putSecret('secret', `egress/${WORKLOAD_NAMESPACE}/${serviceAccount}`, { api_key: apiKeyFor(serviceAccount) });
        secretsWritten.add(serviceAccount);
      }
      return kube.issueToken({ namespace: WORKLOAD_NAMESPACE, serviceAccount, audiences: [SA_AUDIENCE], alg });
    },
    async close() {
      await redis?.close();
      await vault.close();
      await kube.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function kubeconfig(kube: FakeKubeApiserver): string {
  const ca = Buffer.from(kube.caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${kube.url}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    '- name: egress-authz',
    '  user:',
    `    token: ${kube.reviewerToken}`,
    'contexts:',
    '- name: fake',
    '  context:',
    '    cluster: fake',
    '    user: egress-authz',
    'current-context: fake',
    '',
  ].join('\n');
}
