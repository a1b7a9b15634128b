// `egress-authz lint` reports every error at once, each at the file:line:col the user wrote.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { makePolicyDir } from '../support/test-server.js';
import { loadPolicyDirectory } from '../../src/policy/load.js';
import { Services } from '../../src/pipeline/services.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';

const BROKEN = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: broken
spec:
  hostz: [a.example.com]
  authorization:
    bad-type:
      expression: request.method == 1
    bad-syntax:
      expression: 'request.path.startsWith("/v1" &&'
    bad-field:
      expression: >
        request.method == "GET" &&
          request.pathh.startsWith("/v1")
`;

function load(dir: string) {
  return loadPolicyDirectory(dir, new Services({ checkDeadlineMs: 150, defaultDecision: 'deny' }, silentLogger, new Metrics()));
}

describe('policy load errors', () => {
  it('reports every mistake with its line and column', () => {
    const dir = makePolicyDir({ 'broken.yaml': BROKEN });
    const r = load(dir);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const file = path.join(dir, 'broken.yaml');
    const at = r.diagnostics.map((d) => `${d.line}:${d.col}`);
    expect(r.diagnostics.every((d) => d.file === file)).toBe(true);
    expect(r.diagnostics.find((d) => d.message.includes('unknown field "hostz"'))).toMatchObject({ line: 6, col: 3 });
    expect(r.diagnostics.find((d) => d.message.includes('hostz'))?.message).toContain('did you mean "hosts"');
    expect(r.diagnostics.find((d) => d.message.includes('bad-type'))).toMatchObject({ line: 9 });
    expect(r.diagnostics.find((d) => d.message.includes('bad-syntax'))).toMatchObject({ line: 11 });
    // Inside a folded block scalar, on a more-indented line: the column of `pathh`.
    expect(r.diagnostics.find((d) => d.message.includes('bad-field'))).toMatchObject({ line: 15, col: 19 });
    expect(at.length).toBeGreaterThanOrEqual(3);
  });

  it('reports YAML syntax errors and conflicting host policies', () => {
    const dir = makePolicyDir({
      'a.yaml': 'apiVersion: egress-authz.dev/v1alpha1\nkind: EgressPolicy\nmetadata:\n  name: a\nspec:\n  hosts: [x.example.com]\n  authorization:\n    r: "true"\n',
      'b.yaml': 'apiVersion: egress-authz.dev/v1alpha1\nkind: EgressPolicy\nmetadata:\n  name: b\nspec:\n  hosts: [x.example.com]\n  authorization:\n    r: "true"\n',
      'c.yaml': 'apiVersion: v1\nkind: [unclosed\n',
    });
    const r = load(dir);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.diagnostics.some((d) => d.message.includes('conflict: host x.example.com'))).toBe(true);
    expect(r.diagnostics.some((d) => d.file.endsWith('c.yaml') && d.message.startsWith('YAML'))).toBe(true);
  });

  it('the lint command prints file:line:col and exits non-zero', () => {
    const dir = makePolicyDir({ 'broken.yaml': BROKEN });
    let out = '';
    let code = 0;
    try {
      execFileSync('node', ['bin/egress-authz.js', 'lint', dir], { encoding: 'utf8' });
    } catch (err) {
      const e = err as { status: number; stdout: string };
      code = e.status;
      out = e.stdout;
    }
    expect(code).toBe(1);
    expect(out).toContain(`${path.join(dir, 'broken.yaml')}:6:3: unknown field "hostz"`);
  });

  it('serve refuses to start on a broken policy with exit code 2', () => {
    const dir = makePolicyDir({ 'broken.yaml': BROKEN });
    let code = 0;
    let err = '';
    try {
      execFileSync('node', ['bin/egress-authz.js', 'serve', '--policies', dir, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      code = (e as { status: number }).status;
      err = (e as { stderr: string }).stderr;
    }
    expect(code).toBe(2);
    expect(err).toContain('broken.yaml:6:3');
  });
});
