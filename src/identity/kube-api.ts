// What the identity methods need from the Kubernetes API (TokenReview, authenticated GETs), whichever client
// implements it: our own over node:https (kube-http.ts) or @kubernetes/client-node (kube-client-node.ts).
// Also the pieces both share: the error type, and how a failure is described without leaking a secret.

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

/** A client the process owns: close() ends its pooled connections. */
export interface OwnedKubeApi extends KubeApi {
  close(): void;
}

export const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';

/** A reused keep-alive connection that the server had already closed. */
export function isStaleConnection(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** The `reason` of a Kubernetes Status body (Forbidden, Unauthorized, InternalError), never its message. */
export function statusReason(body: unknown): string | undefined {
  try {
    const parsed: unknown = typeof body === 'string' ? JSON.parse(body) : body;
    const reason = (parsed as { reason?: unknown } | null)?.reason;
    return typeof reason === 'string' && /^[A-Za-z]{1,40}$/.test(reason) ? reason : undefined;
  } catch {
    return undefined;
  }
}

/** `POST /x: HTTP 403 Forbidden` for a non-2xx answer; the Status message (which may quote input) is left out. */
export function httpStatusError(what: string, status: number, body: unknown): KubeApiError {
  const reason = statusReason(body);
  return new KubeApiError(`${what}: HTTP ${status}${reason ? ` ${reason}` : ''}`, status);
}

/** A network-level failure as `<what>: <code>`: system error codes only, never a library's message. */
export function networkError(what: string, err: unknown): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const e = err as { name?: unknown; code?: unknown; errno?: unknown } | null;
  if (e?.name === 'AbortError') return new KubeApiError(`${what}: no answer in time`);
  const code = typeof e?.code === 'string' ? e.code : typeof e?.errno === 'string' ? e.errno : undefined;
  return new KubeApiError(`${what}: ${code && /^[A-Z0-9_]{2,40}$/.test(code) ? code : 'connection failed'}`);
}
