// The shared pooled HTTP client at its own level: the TLS settings a pool is built with (CA, server name,
// skip-verify) over HTTPS connections it keeps alive within its bound, and the kind of each failure, which
// callers (Vault, the Kubernetes API) word their own way. The client's use by Vault (headers, urgent calls,
// resend on a closed idle connection) is tested in test/metadata/vault-client.test.ts, its use by the
// Kubernetes API in test/identity/kube-client.test.ts.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HttpPool, PoolRequestError, type HttpPoolOptions, type PoolRequest } from '../../src/backends/http-pool.js';
import { generateTestCa, type TestTls } from '../support/tls.js';

interface TestServer {
  readonly url: string;
  /** Connections accepted (TLS handshakes completed, for HTTPS). */
  connections: number;
  close(): Promise<void>;
}

async function listen(server: Server & { closeAllConnections(): void }, scheme: 'http' | 'https'): Promise<TestServer> {
  const out = { url: '', connections: 0, close: () => Promise.resolve() };
  server.on(scheme === 'https' ? 'secureConnection' : 'connection', () => {
    out.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  out.url = `${scheme}://127.0.0.1:${(server.address() as { port: number }).port}`;
  out.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return out;
}

let tls: TestTls;
const servers: TestServer[] = [];
const pools: HttpPool[] = [];

beforeAll(async () => {
  tls = await generateTestCa();
});
afterEach(async () => {
  for (const p of pools.splice(0)) p.destroy();
  for (const s of servers.splice(0)) await s.close();
});

function pool(options: Partial<HttpPoolOptions> = {}): HttpPool {
  const p = new HttpPool({ maxSockets: 4, idleTimeoutMs: 10_000, ...options });
  pools.push(p);
  return p;
}

async function httpsServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const s = await listen(createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, handle), 'https');
  servers.push(s);
  return s;
}

async function httpServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const s = await listen(createHttpServer(handle), 'http');
  servers.push(s);
  return s;
}

const get = (signal: AbortSignal = AbortSignal.timeout(10_000)): PoolRequest => ({
  method: 'GET',
  headers: { accept: 'text/plain' },
  signal,
  maxResponseBytes: 1024,
});

/** The PoolRequestError a request rejects with. */
async function failure(p: Promise<unknown>): Promise<PoolRequestError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PoolRequestError);
  return err as PoolRequestError;
}

const hello = (_req: IncomingMessage, res: ServerResponse) => res.end('hello');

describe('TLS settings given at construction', () => {
  it('trusts the CA it was given, and no other', async () => {
    const server = await httpsServer(hello);
    const trusting = pool({ tls: { ca: tls.caPem } });
    await expect(trusting.request(new URL(server.url), get())).resolves.toEqual({ status: 200, text: 'hello' });

    const systemRoots = await failure(pool().request(new URL(server.url), get()));
    expect(systemRoots.failure).toBe('connection');
    expect(systemRoots.reason).toMatch(/^[A-Z_]+$/);
    expect(systemRoots.status).toBeUndefined();
  });

  it('checks the certificate for `servername` instead of the URL host, and skips checks when told to', async () => {
    const server = await httpsServer(hello);
    const named = pool({ tls: { ca: tls.caPem, servername: 'localhost' } });
    await expect(named.request(new URL(server.url), get())).resolves.toMatchObject({ status: 200 });
    const wrongName = await failure(pool({ tls: { ca: tls.caPem, servername: 'kubernetes.example.com' } }).request(new URL(server.url), get()));
    expect([wrongName.failure, wrongName.reason]).toEqual(['connection', 'ERR_TLS_CERT_ALTNAME_INVALID']);
    const unchecked = pool({ tls: { rejectUnauthorized: false } });
    await expect(unchecked.request(new URL(server.url), get())).resolves.toMatchObject({ status: 200 });
  });

  it('keeps at most maxSockets TLS connections through a burst, and reuses them for the next one', async () => {
    const server = await httpsServer((_req, res) => setTimeout(() => res.end('ok'), 5));
    const bounded = pool({ maxSockets: 3, tls: { ca: tls.caPem } });
    const burst = () => Promise.all(Array.from({ length: 30 }, () => bounded.request(new URL(server.url), get())));
    expect((await burst()).every((r) => r.text === 'ok')).toBe(true);
    const afterFirst = server.connections;
    expect(afterFirst).toBeGreaterThan(0);
    expect(afterFirst).toBeLessThanOrEqual(3);
    expect(bounded.openConnections()).toBeLessThanOrEqual(3);
    expect((await burst()).every((r) => r.text === 'ok')).toBe(true);
    expect(server.connections).toBe(afterFirst);
  });
});

describe('failures carry their kind and a secret-free reason', () => {
  it('aborted: while waiting for a connection, and in flight (a timeout says so)', async () => {
    const held: ServerResponse[] = [];
    const server = await httpServer((_req, res) => held.push(res));
    const single = pool({ maxSockets: 1 });
    const inFlight = new AbortController();
    const busy = single.request(new URL(server.url), get(inFlight.signal));
    const queued = new AbortController();
    const waiting = single.request(new URL(server.url), get(queued.signal));
    expect(single.waiting()).toBe(1);
    queued.abort();
    expect(await failure(waiting)).toMatchObject({ failure: 'aborted', reason: 'no answer within the deadline' });
    await until(() => held.length === 1);
    // What AbortSignal.timeout() aborts with.
    inFlight.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    expect(await failure(busy)).toMatchObject({ failure: 'aborted', reason: 'timed out' });
    expect(held).toHaveLength(1);
  });

  it('too-large, with the status the server had sent', async () => {
    const server = await httpServer((_req, res) => {
      res.writeHead(200);
      res.end('x'.repeat(2048));
    });
    expect(await failure(pool().request(new URL(server.url), get()))).toMatchObject({
      failure: 'too-large',
      reason: 'response larger than 1024 bytes',
      status: 200,
    });
  });

  it('rejected before sending, without quoting the header', async () => {
    const server = await httpServer(hello);
    const secret = 'Bearer sekret\r\nx-injected: 1';
    const err = await failure(pool().request(new URL(server.url), { ...get(), headers: { authorization: secret } }));
    expect(err).toMatchObject({ failure: 'rejected', reason: 'request rejected before sending (invalid header?)' });
    expect(String(err.stack)).not.toContain('sekret');
    expect(server.connections).toBe(0);
  });

  it('connection: the socket error code', async () => {
    const server = await httpServer(hello);
    const url = new URL(server.url);
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect(await failure(pool().request(url, get()))).toMatchObject({ failure: 'connection', reason: 'ECONNREFUSED', status: undefined });
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error('condition never met');
}
