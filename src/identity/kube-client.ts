// The one Kubernetes API client of the process, shared by every policy: TokenReview plus plain authenticated
// GETs (service-account JWKS, OIDC discovery, Secrets). Configuration: --kubeconfig when given, else the
// in-cluster service account. Our own client over node:https serves every configuration kube-config.ts
// understands; a kubeconfig user needing an exec or auth-provider plugin, impersonation or a proxy loads
// @kubernetes/client-node instead (dynamic import, only then). Created on first use and warmed up as soon as a
// policy needs it.
import type { Services } from '../pipeline/services.js';
import { KubeApiError, type KubeApi, type OwnedKubeApi } from './kube-api.js';
import { loadInClusterConfig, loadKubeconfigFile } from './kube-config.js';
import { HttpKubeApi } from './kube-http.js';

export { KubeApiError, type KubeApi, type TokenReviewStatus } from './kube-api.js';

/** Handle on the shared client: ready once the configuration is read (and, for the fallback, the library loaded). */
export interface KubeApiHandle {
  /** The client, once ready (undefined while loading or when it cannot be configured). */
  current(): KubeApi | undefined;
  /** Resolves with the client, or rejects with a KubeApiError saying why there is none. */
  ready(): Promise<KubeApi>;
}

const SINGLETON_KEY = 'identity:kube-api';

/** The process-wide Kubernetes client (created on first use, warmed up right after the policy load). */
export function kubeApiFor(services: Services): KubeApiHandle {
  return services.singleton(
    SINGLETON_KEY,
    () => {
      const holder = new KubeApiHolder(services);
      services.warmUp(() => holder.ready());
      return holder;
    },
    (holder) => holder.close(),
  );
}

class KubeApiHolder implements KubeApiHandle {
  private api: OwnedKubeApi | undefined;
  private loading: Promise<OwnedKubeApi> | undefined;
  private closed = false;

  constructor(private readonly services: Services) {}

  current(): KubeApi | undefined {
    if (!this.api && !this.loading) void this.ready().catch(() => undefined);
    return this.api;
  }

  ready(): Promise<KubeApi> {
    this.loading ??= this.load();
    return this.loading;
  }

  private async load(): Promise<OwnedKubeApi> {
    const { logger } = this.services;
    const kubeconfig = this.services.config.kubeconfig;
    try {
      const { api, client, why } = await createKubeApi(kubeconfig);
      if (this.closed) api.close();
      this.api = api;
      logger.info({ server: api.server, client, ...(why ? { why } : {}) }, 'kubernetes client ready');
      return api;
    } catch (err) {
      // Library messages may quote the kubeconfig (tokens included): report only the error's code or kind.
      const e = err as NodeJS.ErrnoException;
      const message = err instanceof KubeApiError ? err.message : `cannot configure the Kubernetes client (${e.code ?? e.name ?? 'error'})`;
      logger.error({ kubeconfig: kubeconfig ?? '(in-cluster)' }, message);
      throw new KubeApiError(message);
    }
  }

  close(): void {
    this.closed = true;
    this.api?.close();
  }
}

/** Which client serves a configuration: `native` (ours) or `client-node` (the fallback), and why the fallback. */
export async function createKubeApi(
  kubeconfig: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ api: OwnedKubeApi; client: 'native' | 'client-node'; why?: string }> {
  if (!kubeconfig) {
    if (!env['KUBERNETES_SERVICE_HOST']) {
      throw new KubeApiError('no Kubernetes API configured: not running in a cluster and no --kubeconfig given');
    }
    return { api: new HttpKubeApi(await loadInClusterConfig(env)), client: 'native' };
  }
  const outcome = await loadKubeconfigFile(kubeconfig);
  if (outcome.kind === 'native') return { api: new HttpKubeApi(outcome.connection), client: 'native' };
  const { createClientNodeKubeApi } = await import('./kube-client-node.js');
  return { api: await createClientNodeKubeApi(kubeconfig), client: 'client-node', why: outcome.reason };
}
