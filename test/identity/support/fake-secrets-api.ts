// A protocol fake of the kube-apiserver's Secret list endpoints, enough for apiKey's Secret source:
// GET /api/v1/namespaces/<ns>/secrets and /api/v1/secrets with a labelSelector of equality terms
// (`k=v,k2=v2`), bearer-token authentication, HTTPS with a CA generated at start, a call counter.
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { generateTestCa } from '../../support/tls.js';

export interface FakeSecret {
  namespace: string;
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Plain-text data values (served base64-encoded, as the API does). */
  data: Record<string, string>;
}

export interface FakeSecretsApi {
  readonly url: string;
  readonly caPem: string;
  readonly token: string;
  readonly calls: { list: number };
  /** Label selectors received, in order. */
  readonly selectors: string[];
  secrets: FakeSecret[];
  stop(): Promise<void>;
  close(): Promise<void>;
}

function matches(secret: FakeSecret, selector: string): boolean {
  return selector
    .split(',')
    .filter(Boolean)
    .every((term) => {
      const [k, v] = term.split('=');
      return k !== undefined && secret.labels?.[k] === v;
    });
}

export async function startFakeSecretsApi(secrets: FakeSecret[] = []): Promise<FakeSecretsApi> {
  const tls = await generateTestCa();
  const token = 'secrets-reader-token';
  const calls = { list: 0 };
  const selectors: string[] = [];
  const state = { secrets };
  const sockets = new Set<Socket>();
  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://fake');
    const m = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?secrets$/.exec(url.pathname);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!m || req.method !== 'GET') return send(404, { kind: 'Status', code: 404, reason: 'NotFound' });
    calls.list++;
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { kind: 'Status', code: 401, reason: 'Unauthorized' });
    const namespace = m[1] ? decodeURIComponent(m[1]) : undefined;
    const selector = url.searchParams.get('labelSelector') ?? '';
    selectors.push(selector);
    const items = state.secrets
      .filter((s) => (namespace === undefined || s.namespace === namespace) && matches(s, selector))
      .map((s) => ({
        metadata: { name: s.name, namespace: s.namespace, labels: s.labels, annotations: s.annotations },
        type: 'Opaque',
        data: Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      }));
    send(200, { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  let listening = true;
  const stop = async () => {
    if (!listening) return;
    listening = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    url: `https://127.0.0.1:${address.port}`,
    caPem: tls.caPem,
    token,
    calls,
    selectors,
    get secrets() {
      return state.secrets;
    },
    set secrets(next: FakeSecret[]) {
      state.secrets = next;
    },
    stop,
    close: stop,
  };
}
