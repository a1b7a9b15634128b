// `egress-authz explain`: the policy that matched and why, each evaluator, the expression that decided and
// the values it saw, with secrets redacted.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runExplain } from '../../src/cli/explain.js';
import { bufferIo } from '../../src/cli/io.js';
import { UsageError } from '../../src/config.js';
import type { Explanation } from '../../src/policy/testing/explain.js';
import { makePolicyDir, seedPolicy } from '../support/test-server.js';

const POLICIES = path.resolve('policies');

function requestFile(text: string): string {
  const dir = makePolicyDir({ 'request.yaml': text });
  return path.join(dir, 'request.yaml');
}

async function explain(policies: string, request: string, ...flags: string[]) {
  const io = bufferIo();
  const code = await runExplain(['--policies', policies, '--request', requestFile(request), ...flags], io);
  // Durations vary run to run: blank them so the rest can be compared exactly.
  const lines = io.stdout.map((l) => l.replace(/\d+\.\d{3} ms/g, 'N ms'));
  return { code, lines, stderr: io.stderr };
}

describe('egress-authz explain', () => {
  it('explains a denial: policy, why it matched, each step, the expression and the values it saw', async () => {
    const { code, lines } = await explain(
      POLICIES,
      `host: httpbin.org
method: POST
path: /post
headers:
  x-workload: team-a
  authorization: Bearer my-own-secret-token
`,
    );
    expect(code).toBe(0);
    const f = path.join(POLICIES, 'httpbin-header-injection.yaml');
    expect(lines).toEqual([
      'request:   POST httpbin.org/post',
      'headers:   x-workload: team-a; authorization: [redacted]',
      'policy:    httpbin — selected by exact host "httpbin.org"',
      '           hosts: httpbin.org, *.httpbin.org',
      `           EgressPolicy httpbin (${f}:4:1)`,
      'variables:',
      '  variables.team = "team-a"',
      'steps:',
      '   1. select        policy selection             httpbin (by host)        N ms',
      '   2. authorization known-team                   allowed                  N ms',
      '   3. authorization read-only                    denied                   N ms',
      `      expression (${f}:19:19):`,
      '        request.method in ["GET", "HEAD"]',
      '      values:',
      '        request.method = "POST"',
      'decision:  DENY 403 by authorization (policy httpbin): authorization rule "read-only" denied the request',
      '           header content-type: application/json  [overwrite]',
      '           body: {"error":"forbidden","reason":"only team-a and team-b may GET httpbin.org"}',
      'took N ms',
    ]);
    expect(lines.join('\n')).not.toContain('my-own-secret-token');
  });

  it('redacts credential values the expression saw and secrets the policy handled', async () => {
    const dir = makePolicyDir({
      'p.yaml': `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: keys}
spec:
  hosts: [api.example.com]
  metadata:
    vault:
      http:
        url: http://127.0.0.1:9/never-called-in-tests
  authorization:
    key-and-team:
      expression: >
        request.headers["x-api-key"] == "expected-key" &&
        auth.metadata.vault.data.api_key != "" &&
        request.headers.authorization.startsWith("Bearer ") &&
        request.headers["x-team"] == "a"
`,
    });
    const { lines } = await explain(
      dir,
      `request:
  host: api.example.com
  headers:
    x-api-key: key-sent-by-the-workload
    authorization: Bearer sa-token-value
    x-team: b
metadata:
  vault: {data: {api_key: sk-from-vault}}
`,
    );
    const text = lines.join('\n');
    expect(text).toContain('        request.headers["x-api-key"] = [redacted]');
    expect(text).toContain('        auth.metadata.vault.data.api_key = [redacted]');
    expect(text).toContain('        request.headers.authorization = [redacted]');
    expect(text).toContain('        request.headers["x-team"] = "b"');
    expect(text).toContain('stand-ins: metadata vault (backends not contacted)');
    for (const secret of ['key-sent-by-the-workload', 'sa-token-value', 'sk-from-vault']) expect(text).not.toContain(secret);
  });

  it('shows a missing value as absent', async () => {
    const dir = makePolicyDir({
      'route.yaml': seedPolicy('openai-external-httproute.yaml'),
      'inject.yaml': seedPolicy('openai-credential-injection.yaml'),
    });
    const { lines } = await explain(
      dir,
      `request: {host: api.openai.com, headers: {authorization: Bearer t}}
identity: {username: system:serviceaccount:default:x}
metadata: {}
`,
    );
    const text = lines.join('\n');
    expect(text).toContain('   2. identity      authentication               stand-in: system:serviceaccount:default:x N ms');
    expect(text).toContain('        has(auth.metadata.vault_secret.data)');
    expect(text).toContain('        auth.metadata.vault_secret.data = absent');
    expect(text).toContain('stand-ins: identity; metadata (none)');
    // has() only guards its last field: with no vault_secret at all the predicate errors, and denies.
    expect(text).toContain('   4. authorization vault_credential_check       error: No such key       N ms');
    expect(text).toMatch(/decision: {2}DENY 403 by authorization .*vault_credential_check/);
  });

  it('a Kyverno policy: global selection and the header value its variable read', async () => {
    const dir = makePolicyDir({ 'kyverno.yaml': seedPolicy('kyverno-demo-policy.yaml') });
    const { lines } = await explain(dir, `host: ollama.example\nheaders: {x-force-authorized: "no"}\n`);
    const text = lines.join('\n');
    expect(text).toContain('policy:    default/demo-policy.example.com — selected by no policy names host "ollama.example": global policies asked in order (default/demo-policy.example.com)');
    expect(text).toContain('   2. kyverno       authorizations[0]            denied');
    expect(text).toContain('        variables.allowed = false');
    expect(text).toContain('  variables.force_authorized = "no"');
    expect(text).toContain('body: Access denied by Kyverno policy');
  });

  it('a host no policy governs: the default rule', async () => {
    const { lines } = await explain(POLICIES, 'host: elsewhere.example\n');
    expect(lines).toContain('policy:    (none) — selected by no policy governs host "elsewhere.example": the default rule decides');
    expect(lines).toContain('decision:  DENY 403 by default: no policy governs host "elsewhere.example"');
  });

  it('--format json is the same explanation as data', async () => {
    const { lines } = await explain(POLICIES, 'host: eu.httpbin.org\nheaders: {x-workload: team-b}\n', '--format', 'json');
    const e = JSON.parse(lines.join('\n')) as Explanation;
    expect(e.selection).toMatchObject({ kind: 'policy', policy: 'httpbin', why: 'wildcard host "*.httpbin.org" (longest match for eu.httpbin.org)' });
    expect(e.decision).toMatchObject({ kind: 'allow', status: 200, headersRemoved: ['x-workload'] });
    // The injected API key is a secret: redacted even here.
    expect(e.decision.headers.find((h) => h.name === 'authorization')?.value).toBe('[redacted]');
    expect(e.steps.map((s) => s.name)).toEqual(['policy selection', 'known-team', 'read-only']);
  });

  it('reports a bad request file at its position; usage errors throw', async () => {
    const { code, stderr } = await explain(POLICIES, 'hots: httpbin.org\n');
    expect(code).toBe(1);
    expect(stderr[0]).toMatch(/request\.yaml:1:1: unknown field "hots" in request \(did you mean "host"\?\)/);
    await expect(runExplain(['--policies', POLICIES], bufferIo())).rejects.toBeInstanceOf(UsageError);
    await expect(runExplain(['--policies', '/nonexistent', '--request', requestFile('host: a')], bufferIo())).rejects.toBeInstanceOf(UsageError);
    expect(fs.existsSync(POLICIES)).toBe(true);
  });
});
