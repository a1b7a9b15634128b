// `egress-authz lint`: every error at once, each at the file:line:col the user wrote it.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferIo } from '../../src/cli/io.js';
import { runLint } from '../../src/cli/lint.js';
import { UsageError } from '../../src/config.js';
import { makePolicyDir } from '../support/test-server.js';

// Three different mistakes: a misspelt field, a field that does not exist on `request` (in a folded block
// scalar, on its second line), and a comparison of an int with a string (in a double-quoted scalar).
const THREE_MISTAKES = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: mistakes
spec:
  hosts: [api.example.com]
  authorizaton:
    read-only: request.method == "GET"
  variables:
    - name: team
      expression: >
        request.headers[?"x-team"].orValue("") +
          request.methd
    - name: big
      expression: "request.size > 10 && request.port == \\"443\\""
`;

async function lint(dir: string, ...flags: string[]) {
  const io = bufferIo();
  const code = await runLint([dir, ...flags], io);
  return { code, lines: io.stdout.filter((l) => l !== '') };
}

describe('egress-authz lint', () => {
  it('reports all three mistakes with exact line and column', async () => {
    const dir = makePolicyDir({ 'p.yaml': THREE_MISTAKES });
    const f = path.join(dir, 'p.yaml');
    const { code, lines } = await lint(dir);
    expect(code).toBe(1);
    expect(lines).toEqual([
      `${f}:7:3: unknown field "authorizaton" in EgressPolicy.spec (did you mean "authorization"?)`,
      `${f}:13:19: variables "team": type error: field "methd" does not exist on request (egress.Request); did you mean "method"? (fields: id, time, method, scheme, host, port, path, url_path, query, headers, body, size, protocol)`,
      `${f}:15:41: variables "big": type error: cannot compare int with string using ==: request.port is int, "443" is string (convert one side, e.g. string(x) or int(x))`,
      '3 errors',
    ]);
  });

  it('points into a .cel file referenced with {file: ...}', async () => {
    const dir = makePolicyDir({
      'p.yaml': `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: from-file
spec:
  hosts: [api.example.com]
  authorization:
    team:
      expression:
        file: rules/team.cel
`,
      'rules/team.cel': `// only team namespaces
request.method == "GET" &&
  auth.identty.namespace.startsWith("team-")
`,
    });
    const { code, lines } = await lint(dir);
    expect(code).toBe(1);
    expect(lines[0]).toBe(
      `${path.join(dir, 'rules/team.cel')}:3:8: authorization "team".expression: type error: field "identty" does not exist on auth (egress.Auth); did you mean "identity"? (fields: identity, metadata, authorization)`,
    );
  });

  it('names the variable, its type and the expected type', async () => {
    const dir = makePolicyDir({
      'p.yaml': `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: types
spec:
  hosts: [api.example.com]
  authorization:
    not-bool: request.path
    unknown-var: requst.method == "GET"
    method-typo: request.path.startWith("/v1")
`,
    });
    const { lines } = await lint(dir);
    const f = path.join(dir, 'p.yaml');
    expect(lines).toEqual([
      `${f}:8:15: authorization "not-bool": expression must return bool, but returns string`,
      `${f}:9:18: authorization "unknown-var": type error: unknown variable "requst" (did you mean "request"?); variables are request, source, destination, context, metadata, auth, variables, object`,
      `${f}:10:18: authorization "method-typo": type error: string has no method startWith() (did you mean "startsWith"?) (called on request.path)`,
      '3 errors',
    ]);
  });

  it('--format json gives the same errors as objects', async () => {
    const dir = makePolicyDir({ 'p.yaml': THREE_MISTAKES });
    const io = bufferIo();
    expect(await runLint([dir, '--format', 'json'], io)).toBe(1);
    const out = JSON.parse(io.stdout.join('\n')) as { ok: boolean; errors: Array<{ file: string; line: number; col: number; message: string }> };
    expect(out.ok).toBe(false);
    expect(out.errors.map((e) => [e.line, e.col])).toEqual([
      [7, 3],
      [13, 19],
      [15, 41],
    ]);
    expect(out.errors[0]!.file).toBe(path.join(dir, 'p.yaml'));
  });

  it('exits 0 on a clean directory, including the repository policies and their tests', async () => {
    const { code, lines } = await lint(path.resolve('policies'));
    expect(code).toBe(0);
    expect(lines[0]).toMatch(/2 documents, 2 policies, 2 test files, no errors$/);
  });

  it('reports problems in *_test.yaml files beside the policies', async () => {
    const dir = makePolicyDir({
      'p_test.yaml': `cases:
  - name: typo
    request: {host: a.example.com}
    expect: {decison: allow}
`,
    });
    const { code, lines } = await lint(dir);
    expect(code).toBe(1);
    expect(lines[0]).toBe(`${path.join(dir, 'p_test.yaml')}:4:14: unknown field "decison" in expect (did you mean "decision"?)`);
  });

  it('usage errors are exit 2 (UsageError): no directory, a missing one, a bad format', async () => {
    await expect(runLint([], bufferIo())).rejects.toBeInstanceOf(UsageError);
    await expect(runLint(['/nonexistent/policies'], bufferIo())).rejects.toBeInstanceOf(UsageError);
    const dir = makePolicyDir({});
    await expect(runLint([dir, '--format', 'xml'], bufferIo())).rejects.toBeInstanceOf(UsageError);
    expect(fs.existsSync(dir)).toBe(true);
  });
});
