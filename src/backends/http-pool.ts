// The one pooled HTTP/1.1 client for every backend (Vault, the Kubernetes API): requests over a bounded
// keep-alive connection pool (node:http / node:https Agents), so that a burst of cold Checks does not flood a
// backend with new connections. Node's fetch cannot be bounded per origin without importing undici itself; an
// Agent's `maxSockets` can. TLS settings (a CA, a client certificate, the server name, skip-verify) are the
// pool's, given at construction: one pool talks to one backend's servers with one identity.
//
// Calls beyond the bound wait here, not in the Agent's queue, for two reasons: a waiting call leaves at its
// AbortSignal (the Agent's queue reports an abort only once a connection frees up), and calls have a priority.
// A multi-step backend exchange (Vault: login, then read) sends its later steps as `urgent`: they finish work
// whose first step is already paid for, so under a burst identities complete one after another instead of
// every first step being in flight and none finished when the Checks' deadlines come.
//
// A request that meets a keep-alive connection the server closed while idle is sent once more: it never
// reached the server, so this is safe even for a POST.
//
// Errors are PoolRequestError with a short, secret-free reason (a socket error code, "no answer within the
// deadline", a size limit): never a URL, a header or a body, which may carry tokens.
import http from 'node:http';
import https from 'node:https';

export interface HttpPoolOptions {
  /** Connections per origin (scheme, host, port), in use or idle. */
  readonly maxSockets: number;
  /** An idle connection is closed after this long (shorter if the server's Keep-Alive hint says so). */
  readonly idleTimeoutMs: number;
  /** TLS toward https origins; Node's defaults (system roots, verification on) where absent. */
  readonly tls?: PoolTlsOptions;
}

/** The TLS settings a pool applies to every https connection it opens. */
export type PoolTlsOptions = Pick<https.AgentOptions, 'ca' | 'cert' | 'key' | 'secureContext' | 'servername' | 'rejectUnauthorized'>;

export interface PoolRequest {
  readonly method: 'GET' | 'POST';
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signal: AbortSignal;
  /** Larger responses are refused (a backend cannot fill our memory). */
  readonly maxResponseBytes: number;
  /** Served before every waiting non-urgent call (FIFO within each class). */
  readonly urgent?: boolean;
}

export interface PoolResponse {
  readonly status: number;
  readonly text: string;
}

/**
 * What went wrong, for callers that word it their own way: the call's signal aborted (before or during the
 * exchange), the answer exceeded maxResponseBytes, the request was refused before sending (an invalid header),
 * or the connection failed (a socket error code, or closed mid-answer).
 */
export type PoolFailure = 'aborted' | 'too-large' | 'rejected' | 'connection';

export class PoolRequestError extends Error {
  constructor(
    readonly failure: PoolFailure,
    /** Secret-free: "ECONNREFUSED", "no answer within the deadline", "response larger than N bytes", ... */
    readonly reason: string,
    /** HTTP status, when the server had answered before the failure. */
    readonly status: number | undefined,
  ) {
    super(reason);
    this.name = 'PoolRequestError';
  }
}

/** A failure on a reused idle connection that the server had closed meanwhile: the request never reached it. */
class StaleConnection extends Error {}

const STALE_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** Calls in flight and waiting for one origin. */
class OriginSlots {
  inFlight = 0;
  waiting = 0;
  readonly urgent = new WaitQueue();
  readonly normal = new WaitQueue();
}

/** Wakes a waiting call; false when it had given up meanwhile. */
type Wake = () => boolean;

/** A FIFO of waiting calls; a call that gave up is skipped when its turn comes. */
class WaitQueue {
  private items: Wake[] = [];
  private head = 0;

  push(wake: Wake): void {
    this.items.push(wake);
  }

  /** The next waiter, or undefined. Compacts now and then so a long burst does not keep its spent slots. */
  shift(): Wake | undefined {
    if (this.head >= this.items.length) return undefined;
    const wake = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return wake;
  }
}

export class HttpPool {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly maxInFlight: number;
  private readonly origins = new Map<string, OriginSlots>();

  constructor(options: HttpPoolOptions) {
    this.maxInFlight = options.maxSockets;
    const agentOptions: http.AgentOptions = {
      keepAlive: true,
      maxSockets: options.maxSockets,
      maxFreeSockets: options.maxSockets,
      // Reuse the most recently used connection, so that a quiet period lets the surplus ones time out.
      scheduling: 'lifo',
      timeout: options.idleTimeoutMs,
    };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent({ ...agentOptions, ...options.tls });
  }

  /** Connections open now per origin (in use + idle), for tests and diagnostics. */
  openConnections(): number {
    let n = 0;
    for (const agent of [this.httpAgent, this.httpsAgent]) {
      for (const list of Object.values(agent.sockets)) n += list?.length ?? 0;
      for (const list of Object.values(agent.freeSockets)) n += list?.length ?? 0;
    }
    return n;
  }

  /** Calls waiting for a connection, across origins (for tests and diagnostics). */
  waiting(): number {
    let n = 0;
    for (const slots of this.origins.values()) n += slots.waiting;
    return n;
  }

  async request(url: URL, req: PoolRequest): Promise<PoolResponse> {
    const slots = this.slotsFor(url.origin);
    await this.acquire(slots, req);
    try {
      return await this.once(url, req);
    } catch (err) {
      // The server closed an idle connection just as we reused it; nothing was processed, so one more try
      // (on another or a new connection) is safe even for a POST.
      if (err instanceof StaleConnection && !req.signal.aborted) return await this.once(url, req);
      throw err instanceof StaleConnection ? new PoolRequestError('connection', err.message, undefined) : err;
    } finally {
      this.release(slots, url.origin);
    }
  }

  private slotsFor(origin: string): OriginSlots {
    let slots = this.origins.get(origin);
    if (!slots) {
      slots = new OriginSlots();
      this.origins.set(origin, slots);
    }
    return slots;
  }

  /** Resolves when the call may use a connection; rejects at the call's abort while it waits. */
  private acquire(slots: OriginSlots, req: PoolRequest): Promise<void> {
    if (req.signal.aborted) return Promise.reject(failureOf(undefined, req.signal, undefined));
    if (slots.inFlight < this.maxInFlight) {
      slots.inFlight++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let waiting = true;
      const onAbort = () => {
        if (!waiting) return;
        waiting = false;
        slots.waiting--;
        reject(failureOf(undefined, req.signal, undefined));
      };
      const wake = () => {
        if (!waiting) return false;
        waiting = false;
        slots.waiting--;
        req.signal.removeEventListener('abort', onAbort);
        slots.inFlight++;
        resolve();
        return true;
      };
      slots.waiting++;
      (req.urgent ? slots.urgent : slots.normal).push(wake);
      req.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Hands the connection slot to the next waiting call (urgent ones first), or frees it. */
  private release(slots: OriginSlots, origin: string): void {
    slots.inFlight--;
    for (;;) {
      const wake = slots.urgent.shift() ?? slots.normal.shift();
      if (!wake) break;
      if (wake()) return;
    }
    if (slots.inFlight === 0 && slots.waiting === 0) this.origins.delete(origin);
  }

  /** Closes every connection; later requests open new ones. */
  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private once(url: URL, req: PoolRequest): Promise<PoolResponse> {
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    return new Promise<PoolResponse>((resolve, reject) => {
      let status: number | undefined;
      let settled = false;
      // Answer at the abort itself, whatever state the request is in (Node reports an abort of a request that
      // is still connecting only once its socket is assigned).
      const onAbort = () => fail(failureOf(undefined, req.signal, status));
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        req.signal.removeEventListener('abort', onAbort);
        reject(err);
      };
      const succeed = (answer: PoolResponse) => {
        if (settled) return;
        settled = true;
        req.signal.removeEventListener('abort', onAbort);
        resolve(answer);
      };
      if (req.signal.aborted) {
        onAbort();
        return;
      }
      req.signal.addEventListener('abort', onAbort, { once: true });
      const options: http.RequestOptions = {
        method: req.method,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        signal: req.signal,
      };
      let request: http.ClientRequest;
      try {
        request = (secure ? https.request : http.request)(url, options, onResponse);
      } catch {
        // Invalid options, e.g. a control character in a header value: say so without quoting it.
        fail(new PoolRequestError('rejected', 'request rejected before sending (invalid header?)', undefined));
        return;
      }
      function onResponse(res: http.IncomingMessage): void {
        status = res.statusCode ?? 0;
        const declared = Number(res.headers['content-length'] ?? '0');
        if (declared > req.maxResponseBytes) {
          res.destroy();
          fail(new PoolRequestError('too-large', `response larger than ${req.maxResponseBytes} bytes`, status));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > req.maxResponseBytes) {
            res.destroy();
            fail(new PoolRequestError('too-large', `response larger than ${req.maxResponseBytes} bytes`, status));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => succeed({ status: status ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => fail(failureOf(err, req.signal, status)));
        res.on('close', () => {
          if (!res.complete) fail(req.signal.aborted ? failureOf(undefined, req.signal, status) : new PoolRequestError('connection', 'connection closed mid-answer', status));
        });
      }
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (status === undefined && request.reusedSocket && typeof err.code === 'string' && STALE_CODES.has(err.code)) {
          fail(new StaleConnection(err.code));
          return;
        }
        fail(failureOf(err, req.signal, status));
      });
      request.end(req.body);
    });
  }
}

/**
 * The error for a failed exchange, with a short, secret-free reason: the abort's kind, or the socket error
 * code. Never an error's free text.
 */
function failureOf(err: unknown, signal: AbortSignal, status: number | undefined): PoolRequestError {
  if (signal.aborted) {
    const why = (signal.reason as { name?: unknown } | undefined)?.name;
    return new PoolRequestError('aborted', why === 'TimeoutError' ? 'timed out' : 'no answer within the deadline', status);
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  return new PoolRequestError('connection', typeof code === 'string' && /^[A-Z0-9_]+$/.test(code) ? code : 'request failed', status);
}
