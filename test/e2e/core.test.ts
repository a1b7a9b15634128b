// Issue 2 acceptance: real gRPC on loopback against the seed's Kyverno policy and native policies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { startTestServer, seedPolicy, type TestServer } from '../support/test-server.js';
import { serializeCheckRequest, HealthCheckRequestType, HealthCheckResponseType } from '../../src/envoy/codec.js';
import { buildCheckRequest } from '../../src/cli/check-client.js';

const NATIVE = `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: openai
spec:
  hosts: [api.openai.com, "*.openai.azure.com"]
  authorization:
    has-team:
      expression: request.headers[?"x-team"].orValue("") != ""
  response:
    success:
      headers:
        authorization: '"Bearer injected-key-" + request.headers["x-team"]'
        x-api-key:
          expression: '"k-" + request.headers["x-team"]'
          action: append
      removeHeaders: [x-team]
      queryParameters:
        set: {api-version: '"2024-10-21"'}
        remove: [debug]
      responseHeaders:
        x-egress: '"openai"'
      dynamicMetadata:
        team: request.headers["x-team"]
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: cel-error
spec:
  hosts: [error.example.com]
  authorization:
    divides:
      expression: int(request.headers["x-n"]) > 0
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: cel-error-ignored
spec:
  hosts: [ignore.example.com]
  failurePolicy: Ignore
  authorization:
    divides:
      expression: int(request.headers["x-n"]) > 0
---
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: by-context
spec:
  authorization:
    get-only: request.method == "GET"
`;

describe('seed Kyverno policy, verbatim', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ files: { 'kyverno.yaml': seedPolicy('kyverno-demo-policy.yaml') } });
  });
  afterAll(() => s.close());

  for (const value of ['true', 'enabled']) {
    it(`allows x-force-authorized: ${value}`, async () => {
      const r = await s.client.check({ host: 'host.docker.internal', headers: { 'x-force-authorized': value } });
      expect(r.allowed).toBe(true);
      expect(r.grpcStatus).toBe(0);
    });
  }

  for (const headers of [{}, { 'x-force-authorized': 'false' }, { 'x-force-authorized': 'TRUE' }] as Array<Record<string, string>>) {
    it(`denies 403 with the policy's body for ${JSON.stringify(headers)}`, async () => {
      const r = await s.client.check({ host: 'host.docker.internal', headers });
      expect(r.allowed).toBe(false);
      expect(r.httpStatus).toBe(403);
      expect(r.body).toBe('Access denied by Kyverno policy');
      expect(r.grpcStatus).not.toBe(0);
    });
  }

  it('reads header_map (encode_raw_headers) the same as headers', async () => {
    const ok = await s.client.check({ host: 'host.docker.internal:11434', headers: { 'X-Force-Authorized': 'true' }, rawHeaders: true });
    expect(ok.allowed).toBe(true);
    const no = await s.client.check({ host: 'host.docker.internal', headers: { 'x-force-authorized': 'nope' }, rawHeaders: true });
    expect(no.httpStatus).toBe(403);
  });
});

describe('native policies', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ files: { 'native.yaml': NATIVE } });
  });
  afterAll(() => s.close());

  it('injects headers with overwrite semantics and applies every response mutation', async () => {
    const r = await s.client.check({
      host: 'api.openai.com',
      path: '/v1/chat/completions?debug=1',
      headers: { 'x-team': 'team-a', authorization: 'Bearer workload-sa-token' },
    });
    expect(r.allowed).toBe(true);
    const auth = r.headers.find((h) => h.key === 'authorization');
    expect(auth).toEqual({ key: 'authorization', value: 'Bearer injected-key-team-a', appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD', append: false });
    const apiKey = r.headers.find((h) => h.key === 'x-api-key');
    expect(apiKey?.appendAction).toBe('APPEND_IF_EXISTS_OR_ADD');
    expect(r.headersToRemove).toEqual(['x-team']);
    expect(r.queryParametersToSet).toEqual([{ key: 'api-version', value: '2024-10-21' }]);
    expect(r.queryParametersToRemove).toEqual(['debug']);
    expect(r.responseHeadersToAdd).toEqual([expect.objectContaining({ key: 'x-egress', value: 'openai' })]);
    expect(JSON.stringify(r.dynamicMetadata)).toContain('team-a');
  });

  it('matches *. wildcards and denies failed predicates with a JSON body', async () => {
    const ok = await s.client.check({ host: 'eastus.openai.azure.com', headers: { 'x-team': 'b' } });
    expect(ok.allowed).toBe(true);
    const denied = await s.client.check({ host: 'eastus.openai.azure.com' });
    expect(denied.httpStatus).toBe(403);
    expect(JSON.parse(denied.body)).toEqual({ error: 'forbidden', reason: 'authorization rule "has-team" denied the request' });
    expect(denied.headers).toContainEqual(expect.objectContaining({ key: 'content-type', value: 'application/json' }));
  });

  it('denies an unknown host 403 with a JSON body naming the host', async () => {
    const r = await s.client.check({ host: 'evil.example.net' });
    expect(r.allowed).toBe(false);
    expect(r.httpStatus).toBe(403);
    expect(JSON.parse(r.body).reason).toContain('evil.example.net');
  });

  it('a CEL runtime error denies under failurePolicy Fail and never allows', async () => {
    const missing = await s.client.check({ host: 'error.example.com' });
    expect(missing.allowed).toBe(false);
    expect(missing.httpStatus).toBe(403);
    const bad = await s.client.check({ host: 'error.example.com', headers: { 'x-n': 'not-a-number' } });
    expect(bad.allowed).toBe(false);
    expect(JSON.parse(bad.body).reason).toContain('could not be evaluated');
    expect(bad.body).not.toContain('not-a-number');
    const good = await s.client.check({ host: 'error.example.com', headers: { 'x-n': '3' } });
    expect(good.allowed).toBe(true);
  });

  it('failurePolicy Ignore lets a failing rule pass', async () => {
    const r = await s.client.check({ host: 'ignore.example.com' });
    expect(r.allowed).toBe(true);
  });

  it('selects a policy by the route context extension `policy`', async () => {
    const get = await s.client.check({ host: 'anything.example', contextExtensions: { policy: 'by-context' } });
    expect(get.allowed).toBe(true);
    const post = await s.client.check({ host: 'anything.example', method: 'POST', contextExtensions: { policy: 'by-context' } });
    expect(post.httpStatus).toBe(403);
    const unknown = await s.client.check({ host: 'api.openai.com', contextExtensions: { policy: 'nope' } });
    expect(unknown.httpStatus).toBe(403);
    expect(JSON.parse(unknown.body).reason).toContain('unknown policy "nope"');
  });
});

describe('malformed input', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ files: { 'kyverno.yaml': seedPolicy('kyverno-demo-policy.yaml') } });
  });
  afterAll(() => s.close());

  async function rawCall(body: Buffer): Promise<{ code: number }> {
    try {
      await s.client.checkRaw(body, 3000);
      return { code: 0 };
    } catch (err) {
      return { code: (err as grpc.ServiceError).code };
    }
  }

  it('answers INVALID_ARGUMENT to random bytes and to a request without attributes, and keeps serving', async () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 50; i++) {
      const buf = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256)));
      const r = await rawCall(buf);
      // Some random buffers decode as a valid (mostly empty) message: those are denied or rejected, never crash.
      expect([0, grpc.status.INVALID_ARGUMENT]).toContain(r.code);
    }
    expect((await rawCall(Buffer.alloc(0))).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await rawCall(serializeCheckRequest({ attributes: {} }))).code).toBe(grpc.status.INVALID_ARGUMENT);
    const ok = await s.client.check({ host: 'host.docker.internal', headers: { 'x-force-authorized': 'true' } });
    expect(ok.allowed).toBe(true);
  });

  it('rejects oversized header sets and survives non-UTF-8 header bytes', async () => {
    const huge: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) huge[`x-h-${i}`] = 'v'.repeat(200);
    expect((await rawCall(serializeCheckRequest(buildCheckRequest({ host: 'host.docker.internal', headers: huge }))))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
    });
    const msg = buildCheckRequest({ host: 'host.docker.internal', rawHeaders: true, headers: {} }) as {
      attributes: { request: { http: { headerMap: { headers: Array<{ key: string; rawValue: Buffer }> } } } };
    };
    msg.attributes.request.http.headerMap.headers.push({ key: 'x-force-authorized', rawValue: Buffer.from([0xff, 0xfe, 0x74]) });
    const r = await s.client.checkRaw(serializeCheckRequest(msg));
    expect((r.status as { code?: number } | undefined)?.code).toBe(7);
  });

  it('serves grpc.health.v1 SERVING once policies are loaded', async () => {
    const client = new grpc.Client(s.addr, grpc.credentials.createInsecure());
    const status = await new Promise<number>((resolve, reject) =>
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (v: object) => Buffer.from(HealthCheckRequestType.encode(v).finish()),
        (b: Buffer) => (HealthCheckResponseType.decode(b) as unknown as { status: number }).status,
        { service: '' },
        (err, v) => (err ? reject(err) : resolve(v!)),
      ),
    );
    client.close();
    expect(status).toBe(1);
    const res = await fetch(`${s.adminUrl}/readyz`);
    expect(res.status).toBe(200);
    expect((await fetch(`${s.adminUrl}/healthz`)).status).toBe(200);
  });
});

describe('CEL runtime errors never echo request values', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({
      files: {
        'echo.yaml': `
apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: echo
spec:
  hosts: [echo.example.com]
  authorization:
    lookup:
      expression: '{"a": true}[request.headers["x-key"]]'
    duration:
      expression: duration(request.headers["x-d"]) > duration("1s")
`,
      },
    });
  });
  afterAll(() => s.close());

  it('a failing lookup or conversion denies without the value in the body or the log', async () => {
    const secret = 'SECRET-VALUE-0123456789';
    const r = await s.client.check({ host: 'echo.example.com', headers: { 'x-key': secret, 'x-d': secret } });
    expect(r.httpStatus).toBe(403);
    expect(JSON.parse(r.body).reason).toContain('could not be evaluated');
    expect(r.body).not.toContain(secret);
    expect(r.message).not.toContain(secret);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(s.logs.some((l) => l.includes('"decision"'))).toBe(true);
    expect(s.logs.filter((l) => l.includes(secret))).toEqual([]);
  });
});
