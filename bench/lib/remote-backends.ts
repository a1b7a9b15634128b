// Parent side of bench/backends-child.ts: the fakes in their own process, as an async API.
import { spawn, type ChildProcess } from 'node:child_process';
import { REPO_ROOT } from './paths.js';

export type BackendsRequest =
  | { id: number; op: 'tokens'; serviceAccounts: string[]; alg: 'RS256' | 'ES256' }
  | { id: number; op: 'calls' }
  | { id: number; op: 'reset' }
  | { id: number; op: 'latency'; ms: number }
  | { id: number; op: 'close' };

export interface BackendCalls {
  tokenReviews: number;
  jwks: number;
  discovery: number;
  login: number;
  read: number;
  lookupSelf: number;
}

export interface BackendsReply {
  id: number;
  error?: string;
  ready?: { kubeconfigPath: string; vaultUrl: string; kubeApiUrl: string };
  tokens?: string[];
  calls?: BackendCalls;
}

export interface RemoteBackends {
  readonly kubeconfigPath: string;
  readonly vaultUrl: string;
  readonly kubeApiUrl: string;
  /** Tokens for ai-workloads/<sa>, each with its Vault secret in place. */
  tokens(serviceAccounts: string[], alg?: 'RS256' | 'ES256'): Promise<string[]>;
  calls(): Promise<BackendCalls>;
  resetCounters(): Promise<void>;
  /** Artificial latency added to every kube-apiserver and Vault answer. */
  setLatencyMs(ms: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRemoteBackends(): Promise<RemoteBackends> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'bench/backends-child.ts'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, (r: BackendsReply) => void>();
  let nextId = 1;
  const ready = new Promise<BackendsReply['ready']>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`backends process exited (${code}) before it was ready`)));
    child.on('message', (raw: unknown) => {
      const reply = raw as BackendsReply;
      if (reply.ready) resolve(reply.ready);
      else pending.get(reply.id)?.(reply);
      pending.delete(reply.id);
    });
  });
  const info = (await ready)!;
  const call = (req: Omit<BackendsRequest, 'id'>): Promise<BackendsReply> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (r) => (r.error ? reject(new Error(r.error)) : resolve(r)));
      child.send({ ...req, id });
    });
  return {
    kubeconfigPath: info.kubeconfigPath,
    vaultUrl: info.vaultUrl,
    kubeApiUrl: info.kubeApiUrl,
    tokens: async (serviceAccounts, alg = 'RS256') => (await call({ op: 'tokens', serviceAccounts, alg } as BackendsRequest)).tokens!,
    calls: async () => (await call({ op: 'calls' })).calls!,
    resetCounters: async () => void (await call({ op: 'reset' })),
    setLatencyMs: async (ms) => void (await call({ op: 'latency', ms } as BackendsRequest)),
    close: async () => {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await call({ op: 'close' }).catch(() => undefined);
      await exited;
    },
  };
}
