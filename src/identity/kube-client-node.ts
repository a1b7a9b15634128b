// The Kubernetes API through @kubernetes/client-node, for kubeconfig users our own client does not implement
// (exec and auth-provider plugins, impersonation, proxy-url). Loaded only then, by dynamic import: the library
// takes about half a second and ~70 MiB of RSS to import.
import http from 'node:http';
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import type { AuthenticationV1Api, KubeConfig, V1TokenReviewStatus } from '@kubernetes/client-node';
import { httpStatusError, isStaleConnection, KubeApiError, networkError, type OwnedKubeApi, type TokenReviewStatus } from './kube-api.js';
import { KUBE_API_MAX_SOCKETS } from './kube-http.js';

/** The client for a kubeconfig file, or (without one) the in-cluster configuration. */
export async function createClientNodeKubeApi(kubeconfig: string | undefined): Promise<OwnedKubeApi> {
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeApiError('the kubeconfig has no current cluster');
  return ClientNodeKubeApi.create(kc, cluster);
}

class ClientNodeKubeApi implements OwnedKubeApi {
  private constructor(
    private readonly kc: KubeConfig,
    private readonly authn: AuthenticationV1Api,
    /** One keep-alive connection pool for every call (the library would open a new TLS connection each time). */
    private readonly agent: https.Agent | http.Agent,
    readonly server: string,
  ) {}

  static async create(kc: KubeConfig, cluster: k8s.Cluster): Promise<ClientNodeKubeApi> {
    const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
    const server = cluster.server;
    const bounded = { keepAlive: true, maxSockets: KUBE_API_MAX_SOCKETS, maxFreeSockets: KUBE_API_MAX_SOCKETS };
    // Plain HTTP (a local `kubectl proxy`): the library allows it only with insecure-skip-tls-verify.
    if (server.startsWith('http:')) return new ClientNodeKubeApi(kc, authn, new http.Agent(bounded), server);
    // The library derives TLS settings (CA, client certificate, skip-verify, SNI) from the kubeconfig into a
    // one-off agent; reuse its options for a pooled agent. Behind a proxy-url its agent is the proxy agent
    // itself, which must be kept as it is.
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const derived = opts.agent as https.Agent | undefined;
    if (cluster.proxyUrl && derived) return new ClientNodeKubeApi(kc, authn, derived, server);
    return new ClientNodeKubeApi(kc, authn, new https.Agent({ ...(derived?.options ?? {}), ...bounded }), server);
  }

  async tokenReview(token: string, audiences: readonly string[], signal: AbortSignal): Promise<TokenReviewStatus> {
    const agent = this.agent;
    const middleware = {
      pre: (req: { setSignal(s: AbortSignal): void; setAgent(a: https.Agent | http.Agent): void }) => {
        req.setSignal(signal);
        req.setAgent(agent);
        return new k8s.Observable(Promise.resolve(req));
      },
      post: <R>(res: R) => new k8s.Observable(Promise.resolve(res)),
    };
    const spec = audiences.length > 0 ? { token, audiences: [...audiences] } : { token };
    for (let attempt = 1; ; attempt++) {
      try {
        const review = await this.authn.createTokenReview(
          { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec } },
          // The generated middleware type is structural; ours matches what the library calls.
          { middleware: [middleware as never], middlewareMergeStrategy: 'append' },
        );
        return toStatus(review.status);
      } catch (err) {
        // A pooled connection the server closed while idle fails on reuse; a TokenReview stores nothing, so
        // one retry on a fresh connection is safe.
        if (attempt === 1 && isStaleConnection(err) && !signal.aborted) continue;
        throw describe(err, 'TokenReview');
      }
    }
  }

  async getJson(pathAndQuery: string, signal: AbortSignal): Promise<unknown> {
    try {
      return await this.getJsonOnce(pathAndQuery, signal);
    } catch (err) {
      if (!(err instanceof StaleConnectionError) || signal.aborted) throw err;
      return this.getJsonOnce(pathAndQuery, signal);
    }
  }

  private async getJsonOnce(pathAndQuery: string, signal: AbortSignal): Promise<unknown> {
    const opts: https.RequestOptions = {};
    // Re-read per call: a token file or an exec plugin's credential changes. Its errors may quote the
    // kubeconfig: sanitise them.
    try {
      await this.kc.applyToHTTPSOptions(opts);
    } catch (err) {
      throw describe(err, `GET ${pathAndQuery.split('?')[0]}`);
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    const auth = (opts.headers as Record<string, unknown> | undefined)?.['Authorization'];
    if (typeof auth === 'string') headers['authorization'] = auth;
    // Relative to the server URL, which may carry a path prefix (API proxies such as Rancher's).
    const url = new URL(pathAndQuery.replace(/^\/+/, ''), this.server.endsWith('/') ? this.server : `${this.server}/`);
    return new Promise<unknown>((resolve, reject) => {
      const request = url.protocol === 'http:' ? http.request : https.request;
      const req = request(url, { method: 'GET', headers, agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => reject(new KubeApiError(`GET ${url.pathname}: connection failed`)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) {
            reject(new KubeApiError(`GET ${url.pathname}: HTTP ${status}`, status));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            reject(new KubeApiError(`GET ${url.pathname}: the answer is not JSON`, status));
          }
        });
      });
      req.on('error', (err) => {
        const described = describe(err, `GET ${url.pathname}`);
        reject(isStaleConnection(err) ? new StaleConnectionError(described.message) : described);
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

class StaleConnectionError extends KubeApiError {}

/** A secret-free KubeApiError for any failure (library errors may quote request details). */
function describe(err: unknown, what: string): KubeApiError {
  const e = err as { code?: unknown; body?: unknown };
  if (typeof e.code === 'number') return httpStatusError(what, e.code, e.body);
  return networkError(what, err);
}

/** Drops the keys the library fills with undefined, so the identity holds exactly what the API returned. */
function toStatus(status: V1TokenReviewStatus | undefined): TokenReviewStatus {
  if (!status) return { authenticated: false, error: 'TokenReview returned no status' };
  const out: { -readonly [K in keyof TokenReviewStatus]: TokenReviewStatus[K] } = {
    authenticated: status.authenticated === true,
  };
  if (status.user) {
    const u = status.user;
    const user: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } = {};
    if (u.username !== undefined) user.username = u.username;
    if (u.uid !== undefined) user.uid = u.uid;
    if (u.groups !== undefined) user.groups = [...u.groups];
    if (u.extra !== undefined) user.extra = Object.fromEntries(Object.entries(u.extra).map(([k, v]) => [k, [...v]]));
    out.user = user;
  }
  if (status.audiences !== undefined) out.audiences = [...status.audiences];
  if (status.error !== undefined) out.error = status.error;
  return out;
}
