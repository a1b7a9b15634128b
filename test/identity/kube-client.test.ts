// The Kubernetes API client against the fake kube-apiserver over HTTPS: each kubeconfig form our own client
// understands (token, tokenFile re-read on rotation, client certificate, CA file or inline, skip-verify,
// tls-server-name, current-context), the in-cluster configuration, the fallback to @kubernetes/client-node for
// an exec user, the bounded connection pool, the stale-connection retry, and secret-free errors.
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createKubeApi, KubeApiError } from '../../src/identity/kube-client.js';
import type { OwnedKubeApi } from '../../src/identity/kube-api.js';
import { loadInClusterConfig, loadKubeconfigFile } from '../../src/identity/kube-config.js';
import { HttpKubeApi, KUBE_API_MAX_SOCKETS } from '../../src/identity/kube-http.js';
import { startFakeKubeApiserver, type FakeKubeApiserver } from '../support/fake-kube-apiserver.js';
import { generateTestCa } from '../support/tls.js';

const REVIEWER_USERNAME = 'system:serviceaccount:egress-authz:egress-authz';

let kube: FakeKubeApiserver;
let dir: string;
const opened: OwnedKubeApi[] = [];

beforeAll(async () => {
  kube = await startFakeKubeApiserver({ clientCertificates: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-kube-client-'));
});

afterEach(() => {
  for (const api of opened.splice(0)) api.close();
  kube.setLatencyMs(0);
});

afterAll(async () => {
  await kube?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface ClusterFields {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}

/** A kubeconfig file with one context per entry; the first is current unless `current` says otherwise. */
function kubeconfig(
  contexts: Record<string, { cluster: ClusterFields; user: Record<string, unknown> }>,
  current = Object.keys(contexts)[0],
  at = fs.mkdtempSync(path.join(dir, 'cfg-')),
): string {
  const names = Object.keys(contexts);
  const file = path.join(at, 'kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: names.map((n) => ({ name: `${n}-cluster`, cluster: { server: kube.url, ...contexts[n]!.cluster } })),
    users: names.map((n) => ({ name: `${n}-user`, user: contexts[n]!.user })),
    contexts: names.map((n) => ({ name: n, context: { cluster: `${n}-cluster`, user: `${n}-user` } })),
    'current-context': current,
  };
  fs.writeFileSync(file, stringify(config), { mode: 0o600 });
  return file;
}

const caData = () => ({ 'certificate-authority-data': Buffer.from(kube.caPem).toString('base64') });

async function clientFor(file: string): Promise<{ api: OwnedKubeApi; client: string; why?: string }> {
  const made = await createKubeApi(file);
  opened.push(made.api);
  return made;
}

async function reviewWith(api: OwnedKubeApi, serviceAccount = 'chatbot') {
  const token = kube.issueToken({ namespace: 'ai-workloads', serviceAccount });
  return api.tokenReview(token, [kube.issuer], AbortSignal.timeout(5_000));
}

/** The message of the KubeApiError a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<KubeApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KubeApiError);
  return err as KubeApiError;
}

describe('a kubeconfig with a bearer token and inline CA', () => {
  it('reviews tokens with our own client (no @kubernetes/client-node)', async () => {
    const { api, client } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    expect(client).toBe('native');
    const status = await reviewWith(api);
    expect(status).toMatchObject({
      authenticated: true,
      user: {
        username: 'system:serviceaccount:ai-workloads:chatbot',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:ai-workloads', 'system:authenticated'],
      },
      audiences: [kube.issuer],
    });
  });

  it('reports a rejected token as the API says, and the reviewer lacking rights as HTTP 403 Forbidden', async () => {
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    const expired = kube.issueToken({ namespace: 'a', serviceAccount: 'b', expiresInSeconds: -300 });
    const status = await api.tokenReview(expired, [], AbortSignal.timeout(5_000));
    expect(status.authenticated).toBe(false);
    expect(status.error).toContain('expired');

    const other = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'not-a-reviewer' });
    const { api: weak } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: other } } }));
    const err = await failure(reviewWith(weak));
    expect(err.message).toBe('TokenReview: HTTP 403 Forbidden');
    expect(err.status).toBe(403);
    expect(err.message).not.toContain(other);
  });

  it('GETs JSON with the same credentials, and names the path and status of a failure', async () => {
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    const jwks = (await api.getJson('/openid/v1/jwks', AbortSignal.timeout(5_000))) as { keys: unknown[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    const err = await failure(api.getJson('/api/v1/nothing?labelSelector=a%3Db', AbortSignal.timeout(5_000)));
    expect(err.message).toBe('GET /api/v1/nothing: HTTP 404 NotFound');
  });

  it('gives up when the signal aborts', async () => {
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    kube.setLatencyMs(2_000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 10);
    const err = await failure(api.tokenReview(kube.issueToken({ namespace: 'a', serviceAccount: 'b' }), [], controller.signal));
    expect(err.message).toBe('TokenReview: no answer in time');
  });
});

describe('a kubeconfig with a tokenFile', () => {
  it('re-reads the file when the token in it changes', async () => {
    const at = fs.mkdtempSync(path.join(dir, 'cfg-'));
    const tokenFile = path.join(at, 'token');
    const notReviewer = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'not-a-reviewer' });
    fs.writeFileSync(tokenFile, `${notReviewer}\n`);
    // Relative to the kubeconfig's directory.
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { tokenFile: 'token' } } }, 'main', at));
    expect((await failure(reviewWith(api))).status).toBe(403);

    // The kubelet's way: a new file swapped in by rename.
    fs.writeFileSync(`${tokenFile}.new`, kube.reviewerToken);
    fs.renameSync(`${tokenFile}.new`, tokenFile);
    expect((await reviewWith(api)).authenticated).toBe(true);

    // Rewritten in place, back to the token that may not review.
    fs.writeFileSync(tokenFile, notReviewer);
    expect((await failure(reviewWith(api))).status).toBe(403);
  });

  it('prefers an inline token over tokenFile, as the kubeconfig reference says', async () => {
    const tokenFile = path.join(dir, 'unused-token');
    fs.writeFileSync(tokenFile, kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'not-a-reviewer' }));
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken, tokenFile } } }));
    expect((await reviewWith(api)).authenticated).toBe(true);
  });

  it('fails to configure when the token file is missing, naming the file only', async () => {
    const missing = path.join(dir, 'no-such-token');
    const err = await failure(createKubeApi(kubeconfig({ main: { cluster: caData(), user: { tokenFile: missing } } })));
    expect(err.message).toBe(`cannot read the token file ${missing} (ENOENT)`);
  });
});

describe('TLS settings', () => {
  it('authenticates with a client certificate (files and inline data)', async () => {
    const { certPem, keyPem } = await kube.issueClientCertificate(REVIEWER_USERNAME);
    const certFile = path.join(dir, 'client.crt');
    const keyFile = path.join(dir, 'client.key');
    fs.writeFileSync(certFile, certPem);
    fs.writeFileSync(keyFile, keyPem);
    const fromFiles = await clientFor(kubeconfig({ main: { cluster: caData(), user: { 'client-certificate': certFile, 'client-key': keyFile } } }));
    expect((await reviewWith(fromFiles.api)).authenticated).toBe(true);

    const inline = await clientFor(
      kubeconfig({
        main: {
          cluster: caData(),
          user: { 'client-certificate-data': Buffer.from(certPem).toString('base64'), 'client-key-data': Buffer.from(keyPem).toString('base64') },
        },
      }),
    );
    expect((await reviewWith(inline.api)).authenticated).toBe(true);

    // Another user's certificate is authenticated but may not review: the certificate is what was sent.
    const other = await kube.issueClientCertificate('jane');
    const jane = await clientFor(
      kubeconfig({
        main: {
          cluster: caData(),
          user: { 'client-certificate-data': Buffer.from(other.certPem).toString('base64'), 'client-key-data': Buffer.from(other.keyPem).toString('base64') },
        },
      }),
    );
    expect((await failure(reviewWith(jane.api))).message).toBe('TokenReview: HTTP 403 Forbidden');
  });

  it('refuses a certificate without its key at configuration time', async () => {
    const { certPem } = await kube.issueClientCertificate(REVIEWER_USERNAME);
    const err = await failure(
      createKubeApi(kubeconfig({ main: { cluster: caData(), user: { 'client-certificate-data': Buffer.from(certPem).toString('base64') } } })),
    );
    expect(err.message).toContain('client certificate without its key');
  });

  it('trusts a CA file named relative to the kubeconfig', async () => {
    const cfg = kubeconfig({ main: { cluster: { 'certificate-authority': 'ca.crt' }, user: { token: kube.reviewerToken } } });
    fs.writeFileSync(path.join(path.dirname(cfg), 'ca.crt'), kube.caPem);
    const { api } = await clientFor(cfg);
    expect((await reviewWith(api)).authenticated).toBe(true);
  });

  it('verifies the server against the CA, unless insecure-skip-tls-verify says not to', async () => {
    const otherCa = await generateTestCa();
    const wrongCa = await clientFor(
      kubeconfig({ main: { cluster: { 'certificate-authority-data': Buffer.from(otherCa.caPem).toString('base64') }, user: { token: kube.reviewerToken } } }),
    );
    const err = await failure(reviewWith(wrongCa.api));
    expect(err.message).toMatch(/^TokenReview: [A-Z_]+$/);
    expect(err.status).toBeUndefined();

    const insecure = await clientFor(kubeconfig({ main: { cluster: { 'insecure-skip-tls-verify': true }, user: { token: kube.reviewerToken } } }));
    expect((await reviewWith(insecure.api)).authenticated).toBe(true);
  });

  it('checks the server certificate for tls-server-name instead of the URL host', async () => {
    const named = await clientFor(kubeconfig({ main: { cluster: { ...caData(), 'tls-server-name': 'localhost' }, user: { token: kube.reviewerToken } } }));
    expect((await reviewWith(named.api)).authenticated).toBe(true);
    const wrong = await clientFor(
      kubeconfig({ main: { cluster: { ...caData(), 'tls-server-name': 'kubernetes.example.com' }, user: { token: kube.reviewerToken } } }),
    );
    expect((await failure(reviewWith(wrong.api))).message).toBe('TokenReview: ERR_TLS_CERT_ALTNAME_INVALID');
  });
});

describe('contexts', () => {
  it('uses the current context, and another one when current-context names it', async () => {
    const notReviewer = kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'not-a-reviewer' });
    const contexts = {
      reviewer: { cluster: caData(), user: { token: kube.reviewerToken } },
      workload: { cluster: caData(), user: { token: notReviewer } },
      broken: { cluster: { ...caData(), server: 'https://127.0.0.1:1' }, user: { token: kube.reviewerToken } },
    };
    expect((await reviewWith((await clientFor(kubeconfig(contexts, 'reviewer'))).api)).authenticated).toBe(true);
    expect((await failure(reviewWith((await clientFor(kubeconfig(contexts, 'workload'))).api))).status).toBe(403);
    expect((await failure(reviewWith((await clientFor(kubeconfig(contexts, 'broken'))).api))).message).toBe('TokenReview: ECONNREFUSED');
    expect((await failure(createKubeApi(kubeconfig(contexts, 'absent')))).message).toBe('the kubeconfig has no context "absent"');
  });
});

describe('what our client leaves to @kubernetes/client-node', () => {
  it('falls back for an exec user, and the fallback reviews tokens', async () => {
    const credential = JSON.stringify({
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      kind: 'ExecCredential',
      status: { token: kube.reviewerToken },
    });
    const cfg = kubeconfig({
      main: {
        cluster: caData(),
        user: {
          exec: {
            apiVersion: 'client.authentication.k8s.io/v1beta1',
            command: process.execPath,
            args: ['-e', `process.stdout.write(${JSON.stringify(credential)})`],
            interactiveMode: 'Never',
          },
        },
      },
    });
    const outcome = await loadKubeconfigFile(cfg);
    expect(outcome).toEqual({ kind: 'client-node', reason: 'user "main-user" uses exec' });
    const { api, client, why } = await clientFor(cfg);
    expect([client, why]).toEqual(['client-node', 'user "main-user" uses exec']);
    expect((await reviewWith(api)).authenticated).toBe(true);
  });

  it('also for auth-provider, impersonation and proxy-url', async () => {
    const kinds = async (cluster: ClusterFields, user: Record<string, unknown>) =>
      (await loadKubeconfigFile(kubeconfig({ main: { cluster, user } }))).kind;
    expect(await kinds({}, { 'auth-provider': { name: 'oidc', config: {} } })).toBe('client-node');
    expect(await kinds({}, { token: 't', as: 'jane' })).toBe('client-node');
    expect(await kinds({ 'proxy-url': 'http://127.0.0.1:3128' }, { token: 't' })).toBe('client-node');
    expect(await kinds({}, { token: 't' })).toBe('native');
  });
});

describe('in-cluster configuration', () => {
  it('reads the mounted CA and token, and follows the kubelet rotating the token', async () => {
    // The kubelet's layout: files are symlinks into ..data, which points at a timestamped directory.
    const saDir = fs.mkdtempSync(path.join(dir, 'sa-'));
    const mount = (name: string, token: string) => {
      const stamp = path.join(saDir, name);
      fs.mkdirSync(stamp);
      fs.writeFileSync(path.join(stamp, 'token'), token);
      fs.writeFileSync(path.join(stamp, 'ca.crt'), kube.caPem);
      fs.symlinkSync(name, path.join(saDir, '..data_tmp'));
      fs.renameSync(path.join(saDir, '..data_tmp'), path.join(saDir, '..data'));
    };
    mount('..2026_01_01', kube.issueToken({ namespace: 'ai-workloads', serviceAccount: 'not-a-reviewer' }));
    fs.symlinkSync('..data/token', path.join(saDir, 'token'));
    fs.symlinkSync('..data/ca.crt', path.join(saDir, 'ca.crt'));
    const port = new URL(kube.url).port;
    const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port };
    const api = new HttpKubeApi(await loadInClusterConfig(env, saDir));
    opened.push(api);
    expect(api.server).toBe(kube.url);
    expect((await failure(reviewWith(api))).status).toBe(403);
    mount('..2026_01_02', kube.reviewerToken);
    expect((await reviewWith(api)).authenticated).toBe(true);
  });

  it('needs both service variables', async () => {
    const err = await failure(loadInClusterConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }, dir));
    expect(err.message).toContain('KUBERNETES_SERVICE_PORT');
  });
});

describe('connections to the API server', () => {
  it('keeps at most KUBE_API_MAX_SOCKETS: a burst queues on them, and the next burst opens none', async () => {
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    kube.resetConnectionStats();
    kube.setLatencyMs(20);
    const burst = () => Promise.all(Array.from({ length: 200 }, (_, i) => reviewWith(api, `burst-${i}`)));
    expect((await burst()).every((s) => s.authenticated)).toBe(true);
    const afterFirst = kube.connectionStats().opened;
    expect(afterFirst).toBeGreaterThan(1);
    expect(afterFirst).toBeLessThanOrEqual(KUBE_API_MAX_SOCKETS);
    expect((await burst()).every((s) => s.authenticated)).toBe(true);
    expect(kube.connectionStats().opened).toBe(afterFirst);
  });

  it('lets a request waiting for a pooled connection go as soon as its signal aborts, without sending it', async () => {
    const { api } = await clientFor(kubeconfig({ main: { cluster: caData(), user: { token: kube.reviewerToken } } }));
    kube.setLatencyMs(5_000);
    const before = kube.calls.tokenReviews;
    const busy = Array.from({ length: KUBE_API_MAX_SOCKETS }, (_, i) => reviewWith(api, `busy-${i}`).catch((e: unknown) => e));
    // Every pooled connection carries a request the fake holds.
    while (kube.calls.tokenReviews - before < KUBE_API_MAX_SOCKETS) await new Promise((r) => setTimeout(r, 5));
    const controller = new AbortController();
    const queued = api.tokenReview(kube.issueToken({ namespace: 'a', serviceAccount: 'queued' }), [], controller.signal);
    // Abort once the request waits in the pool's queue (not before it is made).
    await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    const first = await Promise.race([queued.then(() => 'answered', () => 'queued request gave up'), Promise.race(busy).then(() => 'a connection freed up')]);
    expect(first).toBe('queued request gave up');
    expect((await failure(queued)).message).toBe('TokenReview: no answer in time');
    api.close();
    await Promise.all(busy);
    expect(kube.calls.tokenReviews - before).toBe(KUBE_API_MAX_SOCKETS);
  });

  it('sends once more on a new connection when a pooled one turns out closed', async () => {
    // A server that closes each connection on its second request, without answering: what a pooled
    // connection looks like when the server dropped it while idle.
    const tls = await generateTestCa();
    let requests = 0;
    const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const n = ((req.socket as { served?: number }).served ?? 0) + 1;
      (req.socket as { served?: number }).served = n;
      requests++;
      req.resume();
      req.on('end', () => {
        if (n > 1) {
          req.socket.destroy();
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'TokenReview', status: { authenticated: true, user: { username: 'u' } } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const { api } = await clientFor(
        kubeconfig({ main: { cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(tls.caPem).toString('base64') }, user: { token: 't' } } }),
      );
      expect((await api.tokenReview('a', [], AbortSignal.timeout(5_000))).authenticated).toBe(true);
      expect((await api.tokenReview('b', [], AbortSignal.timeout(5_000))).authenticated).toBe(true);
      expect(requests).toBe(3);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('secret-free errors', () => {
  it('never quotes the kubeconfig, even when its YAML is broken on the token line', async () => {
    const file = path.join(dir, 'broken-kubeconfig');
    const secret = 'sekret-token-value-1234';
    fs.writeFileSync(file, `apiVersion: v1\nusers:\n- name: u\n  user:\n    token: "${secret}\n    other: [\n`);
    const err = await failure(createKubeApi(file));
    expect(err.message).toMatch(/^the kubeconfig is not valid YAML/);
    expect(err.message).not.toContain(secret);
  });

  it('names a missing kubeconfig by path and error code', async () => {
    const missing = path.join(dir, 'absent-kubeconfig');
    expect((await failure(createKubeApi(missing))).message).toBe(`cannot read the kubeconfig at ${missing} (ENOENT)`);
  });
});
