// The Vault client's transport: a bounded keep-alive connection pool. Against the fake Vault (logins verified
// through the fake kube-apiserver) for the burst figures, and against small local servers for the wire
// details (headers, size limit, deadline while queued, a connection the server closed while idle).
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VAULT_MAX_CONNECTIONS, VaultClient, VaultError } from '../../src/metadata/vault-client.js';
import { Metrics } from '../../src/observability/metrics.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { allowEgressReads, startFakeVault, type FakeVault } from '../support/fake-vault.js';
import { compile, harness, run } from './harness.js';

const BURST = 200;

let kube: FakeKubeApiserver;
let vault: FakeVault;
/** One ServiceAccount token per distinct identity of the burst. */
let burstTokens: string[];

beforeAll(async () => {
  kube = await startFakeKubeApiserver();
  vault = await startFakeVault({ kube });
  allowEgressReads(vault, ['burst']);
  burstTokens = [];
  for (let i = 0; i < BURST; i++) {
    vault.putSecret('secret', `egress/burst/sa-${i}`, { api_key: `sk-burst-${i}` });
    burstTokens.push(kube.issueToken({ namespace: 'burst', serviceAccount: `sa-${i}` }));
  }
});
afterAll(async () => {
  await vault.close();
  await kube.close();
});

const clients: VaultClient[] = [];
function newClient(maxSockets?: number): VaultClient {
  const c = new VaultClient(new Metrics(), maxSockets === undefined ? {} : { maxSockets });
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  vault.setLatencyMs(0);
});

const KV = { mount: 'secret', version: 2 } as const;
const inTime = () => AbortSignal.timeout(20_000);

describe('VaultClient connection pool against the fake Vault', () => {
  it(`serves ${BURST} concurrent logins and reads of distinct identities over at most the pool bound of connections`, async () => {
    // A bound well below the burst, so that most calls wait for a connection.
    const bound = 16;
    const client = newClient(bound);
    // Slow answers keep many calls in flight at once, as during a burst of cold Checks.
    vault.setLatencyMs(5);
    await vault.stop();
    await vault.start();
    vault.resetConnectionCounts();
    vault.resetCounters();
    const target = { addr: vault.url };
    let mostWaiting = 0;
    const keys = await Promise.all(
      burstTokens.map(async (jwt, i) => {
        const login = client.loginKubernetes(target, 'kubernetes', 'egress-workload', jwt, inTime());
        mostWaiting = Math.max(mostWaiting, client.waitingCalls());
        const secret = await client.readKv(target, KV, `egress/burst/sa-${i}`, (await login).clientToken, inTime());
        return secret.data['api_key'];
      }),
    );
    expect(keys).toEqual(burstTokens.map((_, i) => `sk-burst-${i}`));
    expect(vault.calls).toMatchObject({ login: BURST, read: BURST });
    // The calls beyond the bound waited in the client rather than opening connections.
    expect(mostWaiting).toBe(BURST - bound);
    const seen = vault.connections();
    expect(seen.peakOpen).toBeLessThanOrEqual(bound);
    expect(seen.accepted).toBeLessThanOrEqual(bound);
    expect(client.openConnections()).toBeLessThanOrEqual(bound);
  });

  it(`keeps ${BURST} concurrent cold Checks of the vault source within the default pool bound (${VAULT_MAX_CONNECTIONS}), all allowed`, async () => {
    const h = harness();
    const { stage, errors } = compile(
      `
openai:
  vault:
    addr: ${vault.url}
    auth:
      kubernetes:
        role: egress-workload
    path: '"egress/burst/" + auth.identity.serviceAccount'
`,
      h,
    );
    expect(errors).toEqual([]);
    vault.setLatencyMs(5);
    await vault.stop();
    await vault.start();
    vault.resetConnectionCounts();
    vault.resetCounters();
    const runs = await Promise.all(
      burstTokens.map((credential, i) =>
        run(stage!, { credential, identity: { namespace: 'burst', serviceAccount: `sa-${i}` }, deadlineMs: 20_000 }),
      ),
    );
    expect(runs.map((r) => r.decision)).toEqual(runs.map(() => undefined));
    expect(runs.map((r) => (r.ctx.auth.metadata['openai'] as { data: { api_key: string } }).data.api_key)).toEqual(
      burstTokens.map((_, i) => `sk-burst-${i}`),
    );
    expect(vault.calls).toMatchObject({ login: BURST, read: BURST });
    expect(vault.connections().peakOpen).toBeLessThanOrEqual(VAULT_MAX_CONNECTIONS);
    expect(vault.connections().accepted).toBeLessThanOrEqual(VAULT_MAX_CONNECTIONS);
  });
});

/** A local HTTP server whose handler the test writes; counts the connections it accepts. */
interface LocalServer {
  readonly url: string;
  readonly requests: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[];
  accepted: number;
  close(): Promise<void>;
}

async function localServer(handle: (req: IncomingMessage, res: ServerResponse, socket: Socket, nth: number) => void): Promise<LocalServer> {
  const requests: LocalServer['requests'] = [];
  const perSocket = new WeakMap<Socket, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const socket = req.socket;
      const nth = (perSocket.get(socket) ?? 0) + 1;
      perSocket.set(socket, nth);
      handle(req, res, socket, nth);
    });
  });
  const out: LocalServer = {
    url: '',
    requests,
    accepted: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket: Socket) => {
    out.accepted += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  (out as { url: string }).url = `http://127.0.0.1:${address.port}`;
  return out;
}

const LOGIN_OK = JSON.stringify({ auth: { client_token: 'hvs.test-token', lease_duration: 60, renewable: true, metadata: { role: 'r' } } });
const READ_OK = JSON.stringify({ data: { data: { api_key: 'sk-local' }, metadata: { version: 4 } } });

describe('VaultClient wire details', () => {
  const servers: LocalServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it('sends the per-call Vault token and the namespace, and JSON only on login', async () => {
    const server = await localServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.method === 'POST' ? LOGIN_OK : READ_OK);
    });
    servers.push(server);
    const client = newClient();
    const target = { addr: `${server.url}/`, namespace: 'team-a/prod' };
    const login = await client.loginKubernetes(target, 'k8s-east', 'egress', 'jwt.body.sig', inTime());
    expect(login).toEqual({ clientToken: 'hvs.test-token', leaseMs: 60_000, renewable: true, metadata: { role: 'r' } });
    const secret = await client.readKv(target, KV, 'egress/a b', 'hvs.per-call', inTime());
    expect(secret).toEqual({ data: { api_key: 'sk-local' }, version: 4, metadata: { version: 4 } });

    const [loginReq, readReq] = server.requests;
    expect(loginReq).toMatchObject({ method: 'POST', url: '/v1/auth/k8s-east/login', body: JSON.stringify({ jwt: 'jwt.body.sig', role: 'egress' }) });
    expect(loginReq!.headers).toMatchObject({ 'content-type': 'application/json', 'x-vault-namespace': 'team-a/prod', accept: 'application/json' });
    expect(loginReq!.headers['x-vault-token']).toBeUndefined();
    expect(readReq).toMatchObject({ method: 'GET', url: '/v1/secret/data/egress/a%20b' });
    expect(readReq!.headers).toMatchObject({ 'x-vault-token': 'hvs.per-call', 'x-vault-namespace': 'team-a/prod' });
    // Both calls went over one kept-alive connection.
    expect(server.accepted).toBe(1);
  });

  it('refuses an answer larger than 1 MiB as unavailable', async () => {
    const server = await localServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // No content-length: the limit must hold while reading, too.
      res.write(`{"data":{"data":{"blob":"`);
      res.end(`${'x'.repeat(1024 * 1024)}"}}}`);
    });
    servers.push(server);
    const err = await newClient()
      .readKv({ addr: server.url }, KV, 'big', 'hvs.secret-token', inTime())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultError);
    expect(err).toMatchObject({ failure: 'unavailable', message: 'Vault read failed: response larger than 1048576 bytes' });
  });

  it('answers a call still queued for a connection at its own deadline, while the pool is busy', async () => {
    const held: ServerResponse[] = [];
    const server = await localServer((_req, res) => held.push(res));
    servers.push(server);
    const client = newClient(1);
    const target = { addr: server.url };
    const busy = client.readKv(target, KV, 'slow', 'hvs.a', inTime());
    await until(() => held.length === 1);
    const queued = new AbortController();
    const waiting = client.readKv(target, KV, 'queued', 'hvs.b', queued.signal).catch((e: unknown) => e);
    queued.abort();
    // Rejected although the one connection is still busy with the first call.
    const err = await waiting;
    expect(held).toHaveLength(1);
    expect(err).toMatchObject({ failure: 'unavailable', message: 'Vault read failed: no answer within the deadline' });
    held[0]!.writeHead(200, { 'content-type': 'application/json' }).end(READ_OK);
    await expect(busy).resolves.toMatchObject({ data: { api_key: 'sk-local' } });
    expect(server.accepted).toBe(1);
  });

  it('serves a waiting read before waiting logins, so that started identities finish first', async () => {
    const held: ServerResponse[] = [];
    const server = await localServer((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(LOGIN_OK);
        return;
      }
      held.push(res);
    });
    servers.push(server);
    const client = newClient(1);
    const target = { addr: server.url };
    // The one connection is busy with a read the server holds; a login and then a read queue behind it.
    const busy = client.readKv(target, KV, 'first', 'hvs.a', inTime());
    await until(() => held.length === 1);
    const login = client.loginKubernetes(target, 'kubernetes', 'r', 'jwt-of-a-new-identity', inTime());
    const read = client.readKv(target, KV, 'second', 'hvs.b', inTime());
    expect(client.waitingCalls()).toBe(2);
    held[0]!.writeHead(200, { 'content-type': 'application/json' }).end(READ_OK);
    await until(() => held.length === 2);
    held[1]!.writeHead(200, { 'content-type': 'application/json' }).end(READ_OK);
    await Promise.all([busy, login, read]);
    expect(server.requests.map((r) => r.url)).toEqual([
      '/v1/secret/data/first',
      '/v1/secret/data/second',
      '/v1/auth/kubernetes/login',
    ]);
  });

  it('sends a call again on a new connection when the server closed the idle one it reused', async () => {
    const server = await localServer((_req, res, socket, nth) => {
      // The second request on a connection finds it closed, as after the server's idle timeout.
      if (nth > 1) {
        socket.destroy();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=60' });
      res.end(READ_OK);
    });
    servers.push(server);
    const client = newClient();
    const target = { addr: server.url };
    await client.readKv(target, KV, 'one', 'hvs.a', inTime());
    await expect(client.readKv(target, KV, 'two', 'hvs.a', inTime())).resolves.toMatchObject({ data: { api_key: 'sk-local' } });
    expect(server.accepted).toBe(2);
  });

  it('reports a refused connection by its code, without the token', async () => {
    const server = await localServer(() => undefined);
    const addr = server.url;
    await server.close();
    const err = await newClient()
      .readKv({ addr }, KV, 'x', 'hvs.must-not-leak', inTime())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'unavailable', status: undefined, message: 'Vault read failed: ECONNREFUSED' });
    expect(String((err as Error).stack)).not.toContain('hvs.must-not-leak');
  });

  it('refuses a token that would break the header, without quoting it and without sending anything', async () => {
    const server = await localServer((_req, res) => res.end(READ_OK));
    servers.push(server);
    const client = newClient();
    const err = await client.readKv({ addr: server.url }, KV, 'x', 'hvs.secret\r\nx-injected: 1', inTime()).catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'unavailable', message: 'Vault read failed: request rejected before sending (invalid header?)' });
    expect(server.requests).toHaveLength(0);
    // The slot was given back: the next call goes through.
    await expect(client.readKv({ addr: server.url }, KV, 'x', 'hvs.ok', inTime())).resolves.toMatchObject({ version: 4 });
  });

  it('maps Vault refusals to failures with its short error string', async () => {
    const server = await localServer((_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: ['namespace not authorized'] }));
    });
    servers.push(server);
    const err = await newClient()
      .loginKubernetes({ addr: server.url }, 'kubernetes', 'r', 'jwt', inTime())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'denied', status: 403, message: 'Vault login refused (HTTP 403: namespace not authorized)' });
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error('condition never met');
}
