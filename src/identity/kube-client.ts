// The one Kubernetes API client of the process, shared by every policy: TokenReview through
// @kubernetes/client-node, plus plain authenticated GETs (service-account JWKS, OIDC discovery, Secrets).
// Configuration: --kubeconfig when given, else the in-cluster service account. The library takes about half
// a second to import, so it is loaded lazily and warmed up as soon as a policy needs it.
import http from 'node:http';
import https from 'node:https';
import type { AuthenticationV1Api, KubeConfig, V1TokenReviewStatus } from '@kubernetes/client-node';
import type { Services } from '../pipeline/services.js';

type ClientNode = typeof import('@kubernetes/client-node');

/** A Kubernetes API answer we cannot use (network, timeout, 4xx/5xx). The message is secret-free. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    /** HTTP status when the server answered; undefined for network errors and timeouts. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** What TokenReview says about a token (status.authenticated/user/audiences/error, as the API returns them). */
export interface TokenReviewStatus {
  readonly authenticated: boolean;
  readonly user?: {
    readonly username?: string;
    readonly uid?: string;
    readonly groups?: readonly string[];
    readonly extra?: Readonly<Record<string, readonly string[]>>;
  };
  readonly audiences?: readonly string[];
  readonly error?: string;
}

export interface KubeApi {
  /** The API server URL (for messages; it holds no secret). */
  readonly server: string;
  /** POST /apis/authentication.k8s.io/v1/tokenreviews. Rejects with KubeApiError. */
  tokenReview(token: string, audiences: readonly string[], signal: AbortSignal): Promise<TokenReviewStatus>;
  /** GET a path (with query) on the API server with the client's credentials; parsed JSON. */
  getJson(pathAndQuery: string, signal: AbortSignal): Promise<unknown>;
}

/** Handle on the shared client: ready once the library is loaded and the configuration read. */
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
  private api: ClientNodeKubeApi | undefined;
  private loading: Promise<ClientNodeKubeApi> | undefined;
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

  private async load(): Promise<ClientNodeKubeApi> {
    const { logger } = this.services;
    try {
      const k8s: ClientNode = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      const path = this.services.config.kubeconfig;
      if (path) {
        kc.loadFromFile(path);
      } else if (process.env['KUBERNETES_SERVICE_HOST']) {
        kc.loadFromCluster();
      } else {
        throw new KubeApiError('no Kubernetes API configured: not running in a cluster and no --kubeconfig given');
      }
      const cluster = kc.getCurrentCluster();
      if (!cluster) throw new KubeApiError('the kubeconfig has no current cluster');
      const api = await ClientNodeKubeApi.create(k8s, kc, cluster.server);
      if (this.closed) api.close();
      this.api = api;
      logger.info({ server: api.server }, 'kubernetes client ready');
      return api;
    } catch (err) {
      // Library messages may quote the kubeconfig (tokens included): report only the error's code or kind.
      const e = err as NodeJS.ErrnoException;
      const message = err instanceof KubeApiError ? err.message : `cannot configure the Kubernetes client (${e.code ?? e.name ?? 'error'})`;
      logger.error({ kubeconfig: this.services.config.kubeconfig ?? '(in-cluster)' }, message);
      throw new KubeApiError(message);
    }
  }

  close(): void {
    this.closed = true;
    this.api?.close();
  }
}

class ClientNodeKubeApi implements KubeApi {
  private constructor(
    private readonly k8s: ClientNode,
    private readonly kc: KubeConfig,
    private readonly authn: AuthenticationV1Api,
    /** One keep-alive connection pool for every call (the library would open a new TLS connection each time). */
    private readonly agent: https.Agent | http.Agent,
    readonly server: string,
  ) {}

  static async create(k8s: ClientNode, kc: KubeConfig, server: string): Promise<ClientNodeKubeApi> {
    const authn = kc.makeApiClient(k8s.AuthenticationV1Api);
    // Plain HTTP (a local `kubectl proxy`): the library allows it only with insecure-skip-tls-verify.
    if (server.startsWith('http:')) return new ClientNodeKubeApi(k8s, kc, authn, new http.Agent({ keepAlive: true }), server);
    // The library derives TLS settings (CA, client certificate, skip-verify, SNI) from the kubeconfig into a
    // one-off agent; reuse its options for a pooled agent.
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const derived = (opts.agent as https.Agent | undefined)?.options ?? {};
    return new ClientNodeKubeApi(k8s, kc, authn, new https.Agent({ ...derived, keepAlive: true }), server);
  }

  async tokenReview(token: string, audiences: readonly string[], signal: AbortSignal): Promise<TokenReviewStatus> {
    const { Observable } = this.k8s;
    const agent = this.agent;
    const middleware = {
      pre: (req: { setSignal(s: AbortSignal): void; setAgent(a: https.Agent | http.Agent): void }) => {
        req.setSignal(signal);
        req.setAgent(agent);
        return new Observable(Promise.resolve(req));
      },
      post: <R>(res: R) => new Observable(Promise.resolve(res)),
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
        throw this.describe(err, 'TokenReview');
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
    // Re-read per call: an in-cluster token file rotates. Its errors may quote the kubeconfig: sanitise them.
    try {
      await this.kc.applyToHTTPSOptions(opts);
    } catch (err) {
      throw this.describe(err, `GET ${pathAndQuery.split('?')[0]}`);
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
        const described = this.describe(err, `GET ${url.pathname}`);
        reject(isStaleConnection(err) ? new StaleConnectionError(described.message) : described);
      });
      req.end();
    });
  }

  /** A secret-free KubeApiError for any failure (library errors may quote request details). */
  private describe(err: unknown, what: string): KubeApiError {
    if (err instanceof KubeApiError) return err;
    const e = err as { name?: string; code?: unknown; body?: unknown };
    if (e.name === 'AbortError') return new KubeApiError(`${what}: no answer in time`);
    if (typeof e.code === 'number') {
      const reason = statusReason(e.body);
      return new KubeApiError(`${what}: HTTP ${e.code}${reason ? ` ${reason}` : ''}`, e.code);
    }
    const sys = typeof e.code === 'string' ? e.code : (err as { errno?: unknown }).errno;
    return new KubeApiError(`${what}: ${typeof sys === 'string' ? sys : 'connection failed'}`);
  }

  close(): void {
    this.agent.destroy();
  }
}

class StaleConnectionError extends KubeApiError {}

/** A reused keep-alive connection that the server had already closed. */
function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** The `reason` of a Kubernetes Status body (Forbidden, Unauthorized, InternalError), never its message. */
function statusReason(body: unknown): string | undefined {
  try {
    const parsed: unknown = typeof body === 'string' ? JSON.parse(body) : body;
    const reason = (parsed as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' && /^[A-Za-z]{1,40}$/.test(reason) ? reason : undefined;
  } catch {
    return undefined;
  }
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
