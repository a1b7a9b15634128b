// `egress-authz test`: policy tests beside the policies, readable diffs, stand-ins instead of backends.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferIo } from '../../src/cli/io.js';
import { runTest } from '../../src/cli/test.js';
import { UsageError } from '../../src/config.js';
import { makePolicyDir, seedPolicy } from '../support/test-server.js';

async function test(target: string, ...flags: string[]) {
  const io = bufferIo();
  const code = await runTest([target, ...flags], io);
  return { code, lines: io.stdout.filter((l) => l !== ''), stderr: io.stderr };
}

const HTTPBIN = path.resolve('policies/httpbin-header-injection.yaml');
const readPolicy = (f: string) => import('node:fs').then((fs) => fs.readFileSync(f, 'utf8'));

describe('egress-authz test', () => {
  it('the bundled policies pass their tests', async () => {
    const { code, lines } = await test(path.resolve('policies'));
    expect(lines).toEqual(['10 passed, 0 failed']);
    expect(code).toBe(0);
  });

  it('a deliberately wrong expectation fails with expected vs actual, at the line that states it', async () => {
    const dir = makePolicyDir({
      'httpbin.yaml': await readPolicy(HTTPBIN),
      'httpbin_test.yaml': `cases:
  - name: team-a gets its key
    request:
      host: httpbin.org
      headers: {x-workload: team-a}
    expect:
      decision: allow
      headers:
        authorization: Bearer the-wrong-key
  - name: team-c is allowed (wrong)
    request:
      host: httpbin.org
      headers: {x-workload: team-c}
    expect:
      status: 200
      headersRemoved: [x-workload]
  - name: a correct case
    request: {host: httpbin.org, headers: {x-workload: team-b}}
    expect: {decision: allow}
`,
    });
    const t = path.join(dir, 'httpbin_test.yaml');
    const { code, lines } = await test(dir);
    expect(code).toBe(1);
    expect(lines).toEqual([
      `${t}:9:24: case "team-a gets its key": header "authorization": expected "Bearer the-wrong-key", got "Bearer demo-key-for-team-a"`,
      `${t}:15:15: case "team-c is allowed (wrong)": status: expected 200, got 403 (deny 403 by authorization in httpbin: authorization rule "known-team" denied the request)`,
      `${t}:16:23: case "team-c is allowed (wrong)": headersRemoved: expected [x-workload] removed, got nothing removed (deny 403 by authorization in httpbin: authorization rule "known-team" denied the request)`,
      '1 passed, 2 failed',
    ]);
  });

  it('--explain shows why a failing case got its decision', async () => {
    const dir = makePolicyDir({
      'httpbin.yaml': await readPolicy(HTTPBIN),
      'x_test.yaml': `cases:
  - name: POST expected to pass
    request: {host: httpbin.org, method: POST, headers: {x-workload: team-a}}
    expect: {decision: allow}
`,
    });
    const { lines } = await test(dir, '--explain');
    const text = lines.join('\n');
    expect(text).toContain('case "POST expected to pass": decision: expected allow, got deny 403 by authorization');
    expect(text).toContain('request.method in ["GET", "HEAD"]');
    expect(text).toContain('request.method = "POST"');
  });

  it('stand-ins replace identity and Vault: the seed credential-injection policy needs no cluster', async () => {
    const dir = makePolicyDir({
      'route.yaml': seedPolicy('openai-external-httproute.yaml'),
      'inject.yaml': seedPolicy('openai-credential-injection.yaml'),
      'limit.yaml': seedPolicy('openai-rate-limit.yaml'),
      'inject_test.yaml': `cases:
  - name: team-a gets its own key from (stand-in) Vault
    request:
      host: api.openai.com
      method: POST
      path: /v1/chat/completions
      headers: {authorization: Bearer team-a-sa-token}
    identity:
      username: system:serviceaccount:team-a:client
      user: {username: system:serviceaccount:team-a:client}
    metadata:
      vault_login: {auth: {client_token: hvs.test, metadata: {service_account_namespace: team-a, service_account_name: client}}}
      vault_secret: {data: {data: {api_key: sk-team-a}}}
    expect:
      decision: allow
      headers: {authorization: Bearer sk-team-a}
  - name: no secret for the namespace is 403
    request: {host: api.openai.com, headers: {authorization: Bearer default-sa-token}}
    identity: {username: system:serviceaccount:default:client}
    metadata: {}
    expect: {decision: deny, status: 403, reason: vault_credential_check}
  - name: the 101st request in a minute is rate limited
    repeat: 101
    request: {host: api.openai.com, headers: {authorization: Bearer team-b-sa-token}}
    identity: {username: system:serviceaccount:team-b:client}
    metadata:
      vault_secret: {data: {data: {api_key: sk-team-b}}}
    expect: {decision: deny, status: 429}
  - name: without stand-ins the real TokenReview is needed, and there is no cluster here (fail closed)
    request: {host: api.openai.com, headers: {authorization: Bearer some-token}}
    expect: {decision: deny, status: 503}
`,
    });
    const { code, lines } = await test(dir);
    expect(lines).toEqual(['4 passed, 0 failed']);
    expect(code).toBe(0);
  });

  it('cases with mistakes do not run and count as failed', async () => {
    const dir = makePolicyDir({
      'httpbin.yaml': await readPolicy(HTTPBIN),
      'x_test.yaml': `cases:
  - name: misspelt
    request: {hots: httpbin.org}
    expect: {decision: allow}
  - name: fine
    request: {host: httpbin.org, headers: {x-workload: team-a}}
    expect: {decision: allow}
`,
    });
    const t = path.join(dir, 'x_test.yaml');
    const { code, lines } = await test(dir);
    expect(code).toBe(1);
    expect(lines).toEqual([
      `${t}:3:15: unknown field "hots" in request (did you mean "host"?)`,
      `${t}:3:14: request.host is required`,
      `${t}:2:5: case "misspelt": not run: the test file has errors (see above)`,
      '1 passed, 1 failed',
    ]);
  });

  it('policies that do not load fail every case, with the load errors', async () => {
    const dir = makePolicyDir({
      'bad.yaml': `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata: {name: bad}
spec:
  hosts: [a.example.com]
  authorization:
    r: request.methd == "GET"
`,
      'bad_test.yaml': `cases:
  - name: anything
    request: {host: a.example.com}
    expect: {decision: allow}
`,
    });
    const { code, lines } = await test(dir);
    expect(code).toBe(1);
    expect(lines[0]).toMatch(/bad\.yaml:7:16: authorization "r": type error: field "methd" does not exist on request/);
    expect(lines[1]).toMatch(/case "anything": not run: the policies in .* did not load/);
    expect(lines[2]).toBe('0 passed, 1 failed');
  });

  it('`policies:` points a test file at another directory', async () => {
    const dir = makePolicyDir({
      'pol/httpbin.yaml': await readPolicy(HTTPBIN),
      'tests/httpbin_test.yaml': `policies: ../pol
cases:
  - name: team-b may read
    request: {host: httpbin.org, headers: {x-workload: team-b}}
    expect: {decision: allow, policy: httpbin}
`,
    });
    const { code, lines } = await test(path.join(dir, 'tests'));
    expect(lines).toEqual(['1 passed, 0 failed']);
    expect(code).toBe(0);
  });

  it('--format junit reports every case', async () => {
    const { code, lines } = await test(path.resolve('policies'), '--format', 'junit');
    expect(code).toBe(0);
    const xml = lines.join('\n');
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>/);
    expect(xml).toMatch(/<testsuites name="egress-authz policy tests" tests="10" failures="0"/);
    expect(xml.match(/<testcase /g)).toHaveLength(10);
    expect(xml).toContain('name="team-a may GET and gets its upstream key"');
  });

  it('--format junit carries the diff of a failing case', async () => {
    const dir = makePolicyDir({
      'httpbin.yaml': await readPolicy(HTTPBIN),
      'x_test.yaml': `cases:
  - name: wrong <status>
    request: {host: httpbin.org}
    expect: {status: 200}
`,
    });
    const { code, lines } = await test(dir, '--format', 'junit');
    expect(code).toBe(1);
    const xml = lines.join('\n');
    expect(xml).toContain('tests="1" failures="1"');
    expect(xml).toContain('<testcase name="wrong &lt;status&gt;"');
    expect(xml).toContain('<failure message="status: expected 200, got 403 (deny 403 by authorization in httpbin');
  });

  it('usage: no target, an unknown flag, a missing directory', async () => {
    await expect(runTest([], bufferIo())).rejects.toBeInstanceOf(UsageError);
    await expect(runTest(['policies', '--fromat', 'junit'], bufferIo())).rejects.toBeInstanceOf(UsageError);
    await expect(runTest(['/nonexistent'], bufferIo())).rejects.toBeInstanceOf(UsageError);
    const { code, stderr } = await test(makePolicyDir({}));
    expect(code).toBe(1);
    expect(stderr[0]).toMatch(/no \*_test\.yaml files found/);
  });
});
