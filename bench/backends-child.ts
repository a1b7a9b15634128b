// The fake kube-apiserver and fake Vault in a process of their own, driven over IPC, for the cold-path and
// memory benchmarks: their CPU work (TLS, token signing and verification) must not stall the client that
// times the Checks. Started by lib/remote-backends.ts.
import { startBackends } from './lib/backends.js';
import type { BackendsReply, BackendsRequest } from './lib/remote-backends.js';

const backends = await startBackends();

function send(message: BackendsReply): void {
  process.send?.(message);
}

process.on('message', (raw: unknown) => {
  const req = raw as BackendsRequest;
  try {
    switch (req.op) {
      case 'tokens':
        send({ id: req.id, tokens: req.serviceAccounts.map((sa) => backends.workloadToken(sa, req.alg)) });
        break;
      case 'calls':
        send({ id: req.id, calls: { ...backends.kube.calls, ...backends.vault.calls } });
        break;
      case 'reset':
        backends.kube.resetCounters();
        backends.vault.resetCounters();
        send({ id: req.id });
        break;
      case 'latency':
        backends.kube.setLatencyMs(req.ms);
        backends.vault.setLatencyMs(req.ms);
        send({ id: req.id });
        break;
      case 'close':
        backends.close().then(() => {
          send({ id: req.id });
          process.exit(0);
        });
        break;
    }
  } catch (err) {
    send({ id: req.id, error: (err as Error).message });
  }
});

send({ id: 0, ready: { kubeconfigPath: backends.kubeconfigPath, vaultUrl: backends.vault.url, kubeApiUrl: backends.kube.url } });
