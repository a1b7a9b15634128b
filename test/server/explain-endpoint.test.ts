// Admin POST /debug/explain (and `check --explain`): off by default, loopback only, same explanation as
// `egress-authz explain`.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck } from '../../src/cli/check.js';
import { bufferIo } from '../../src/cli/io.js';
import type { Explanation } from '../../src/policy/testing/explain.js';
import { isLoopbackPeer } from '../../src/server/explain-endpoint.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

const HTTPBIN = fs.readFileSync(path.resolve('policies/httpbin-header-injection.yaml'), 'utf8');

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

describe('POST /debug/explain', () => {
  let on: TestServer;
  let off: TestServer;
  beforeAll(async () => {
    on = await startTestServer({ files: { 'httpbin.yaml': HTTPBIN }, config: { enableExplain: true } });
    off = await startTestServer({ files: { 'httpbin.yaml': HTTPBIN } });
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  it('explains a request against the live policies', async () => {
    const res = await post(`${on.adminUrl}/debug/explain`, {
      request: { host: 'httpbin.org', method: 'POST', headers: { 'x-workload': 'team-a', authorization: 'Bearer live-secret' } },
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    const e = JSON.parse(text) as Explanation;
    expect(e.selection).toMatchObject({ kind: 'policy', policy: 'httpbin', why: 'exact host "httpbin.org"' });
    expect(e.decision).toMatchObject({ kind: 'deny', status: 403, evaluator: 'authorization' });
    const denied = e.steps.find((s) => s.result === 'denied')!;
    expect(denied.name).toBe('read-only');
    expect(denied.values).toEqual([{ expression: 'request.method', value: '"POST"' }]);
    expect(e.request.headers['authorization']).toBe('[redacted]');
    expect(text).not.toContain('live-secret');
  });

  it('is off unless --enable-explain', async () => {
    const res = await post(`${off.adminUrl}/debug/explain`, { host: 'httpbin.org' });
    expect(res.status).toBe(405); // the plain admin server: GET/HEAD only
    const get = await fetch(`${off.adminUrl}/debug/explain`);
    expect(get.status).toBe(404);
  });

  it('refuses forwarded requests (a local proxy relaying a remote caller)', async () => {
    const res = await post(`${on.adminUrl}/debug/explain`, { host: 'httpbin.org' }, { 'x-forwarded-for': '203.0.113.9' });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toMatch(/only to clients on this host/);
  });

  it('accepts only the loopback addresses a local client uses', () => {
    expect(isLoopbackPeer('127.0.0.1')).toBe(true);
    expect(isLoopbackPeer('::1')).toBe(true);
    expect(isLoopbackPeer('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackPeer('127.0.0.6')).toBe(false); // Istio sidecar inbound passthrough source
    expect(isLoopbackPeer('10.1.2.3')).toBe(false);
    expect(isLoopbackPeer(undefined)).toBe(false);
  });

  it('rejects bad bodies, stand-ins and other methods', async () => {
    expect((await post(`${on.adminUrl}/debug/explain`, 'not json')).status).toBe(400);
    expect((await post(`${on.adminUrl}/debug/explain`, { method: 'GET' })).status).toBe(400);
    const standIn = await post(`${on.adminUrl}/debug/explain`, { request: { host: 'httpbin.org' }, identity: { username: 'x' } });
    expect(standIn.status).toBe(400);
    expect(((await standIn.json()) as { error: string }).error).toMatch(/stand-ins/);
    expect((await fetch(`${on.adminUrl}/debug/explain`)).status).toBe(405);
    // The other admin routes still answer.
    expect((await fetch(`${on.adminUrl}/healthz`)).status).toBe(200);
  });

  it('egress-authz check --explain renders the server explanation', async () => {
    const io = bufferIo();
    const code = await runCheck(
      ['--explain', '--admin-addr', new URL(on.adminUrl).host, '--host', 'httpbin.org', '-H', 'x-workload: team-c'],
      io,
    );
    expect(code).toBe(1);
    const text = io.stdout.join('\n');
    expect(text).toContain('policy:    httpbin — selected by exact host "httpbin.org"');
    expect(text).toContain('        variables.team in ["team-a", "team-b"]');
    expect(text).toContain('        variables.team = "team-c"');
    expect(text).toMatch(/decision: {2}DENY 403 by authorization \(policy httpbin\)/);
  });

  it('check --explain against a server without the endpoint says how to turn it on', async () => {
    const io = bufferIo();
    const code = await runCheck(['--explain', '--admin-addr', new URL(off.adminUrl).host, '--host', 'httpbin.org'], io);
    expect(code).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/start the server with --enable-explain/);
  });
});
