// GET a small JSON document (OIDC discovery, a JWKS) over HTTPS, trusting the system roots or a given CA.
// Plain HTTP is accepted only for loopback addresses (local development and tests).
import http from 'node:http';
import https from 'node:https';

const MAX_BODY_BYTES = 1024 * 1024;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export class HttpJsonError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HttpJsonError';
  }
}

/** Why `url` may not be fetched (undefined when it may): https anywhere, http only on loopback. */
export function urlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname)) return undefined;
  return `"${url}" must be an https URL (plain http only on loopback)`;
}

export interface HttpJsonOptions {
  /** PEM of the CA(s) to trust instead of the system roots. */
  readonly ca?: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly signal: AbortSignal;
}

export function getJson(url: string, opts: HttpJsonOptions): Promise<unknown> {
  const u = new URL(url);
  const where = `${u.host}${u.pathname}`;
  return new Promise<unknown>((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY_BYTES) {
          res.destroy();
          reject(new HttpJsonError(`GET ${where}: answer larger than ${MAX_BODY_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', () => reject(new HttpJsonError(`GET ${where}: connection failed`)));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          reject(new HttpJsonError(`GET ${where}: HTTP ${status}`, status));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new HttpJsonError(`GET ${where}: the answer is not JSON`, status));
        }
      });
    };
    const headers = { accept: 'application/json', ...opts.headers };
    const req =
      u.protocol === 'https:'
        ? https.request(u, { method: 'GET', headers, signal: opts.signal, ...(opts.ca ? { ca: opts.ca } : {}) }, onResponse)
        : http.request(u, { method: 'GET', headers, signal: opts.signal }, onResponse);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.name === 'AbortError' ? 'no answer in time' : (err.code ?? 'connection failed');
      reject(new HttpJsonError(`GET ${where}: ${why}`));
    });
    req.end();
  });
}
