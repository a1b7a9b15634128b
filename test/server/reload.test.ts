// Hot reload under load: a policy edit while 1,000 checks are in flight fails none of them, later checks
// follow the new policy, a broken edit keeps the old one and is reported (file:line:col + metrics), and a
// check in flight during a reload finishes on the set it started with.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildCheckRequest } from '../../src/cli/check-client.js';
import { deserializeCheckRequest, serializeCheckRequest } from '../../src/envoy/codec.js';
import { toRequestView } from '../../src/envoy/request.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Authorizer } from '../../src/pipeline/authorizer.js';
import type { Stage } from '../../src/pipeline/context.js';
import { allow } from '../../src/pipeline/decision.js';
import { Services } from '../../src/pipeline/services.js';
import { CompiledPolicy } from '../../src/policy/policy.js';
import { PolicySet } from '../../src/policy/policy-set.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { parsePrometheus, seriesValue, startPump, waitFor } from './ops-helpers.js';

function policy(version: string, extraCondition = ''): string {
  return `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: svc
spec:
  hosts: [svc.example]
  authorization:
    get-only:
      expression: request.method == "GET"${extraCondition}
  response:
    success:
      headers:
        x-policy-version: '"${version}"'
`;
}
/** Line 9, column 54 is `request.nosuchfield`: a type error the loader reports at that position. */
const BROKEN = policy('v3', ' && request.nosuchfield');

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const versionOf = (r: { headers: Array<{ key: string; value: string }> }) => r.headers.find((h) => h.key === 'x-policy-version')?.value;

describe('hot reload', () => {
  it('edits a policy while 1,000 checks are in flight: none fails, later checks follow the new policy; a broken edit keeps it', async () => {
    server = await startTestServer({
      files: { 'svc.yaml': policy('v1') },
      config: { watch: true, watchDebounceMs: 100, watchPollIntervalMs: 0, decisionLog: 'off', logLevel: 'info' },
    });
    const s = server;
    const generation = () => s.app.state().generation;
    // 1,000 checks in flight at every moment until stopped: a finished check starts the next.
    // Client deadlines are generous: this test is about answers, and CI machines can be very busy.
    const pump = startPump(() => s.client.check({ host: 'svc.example', path: '/x' }, 120_000), 1000, generation);
    expect(pump.outstanding()).toBe(1000);
    // Edit once answers are streaming, so the swap lands among checks the server is working on.
    await waitFor(() => pump.records.length >= 200, '200 answers under v1', 60_000);

    s.writePolicy('svc.yaml', policy('v2'));
    await waitFor(() => generation() === 2, 'the watcher to reload the edited policy', 60_000);
    // Keep the load on until a good number of checks started after the reload have come back.
    await waitFor(() => pump.records.filter((r) => r.tag === 2).length >= 200, '200 checks started after the reload', 60_000);

    // A broken edit, still under load.
    s.writePolicy('svc.yaml', BROKEN);
    await waitFor(() => s.app.state().lastReload.ok === false, 'the broken edit to be tried', 60_000);
    const afterBroken = pump.records.length;
    await waitFor(() => pump.records.length >= afterBroken + 200, '200 more checks after the broken edit', 60_000);
    const records = await pump.stop();

    // Zero failed checks, every answer an allow from one whole policy version.
    expect(records.filter((r) => r.error).map((r) => r.error!.message)).toEqual([]);
    expect(records.every((r) => r.result!.allowed)).toBe(true);
    const versions = records.map((r) => versionOf(r.result!));
    expect(new Set(versions)).toEqual(new Set(['v1', 'v2']));
    // Checks sent after the reload was in place follow the new policy; none saw the broken one.
    expect(records.filter((r) => r.tag >= 2).every((r) => versionOf(r.result!) === 'v2')).toBe(true);
    // The edit landed while checks were in flight: at the moment of the swap 1,000 checks sent under v1 were
    // outstanding (the pump refills synchronously), and every one of them still got an answer.
    expect(records.filter((r) => r.tag === 1).length).toBeGreaterThanOrEqual(1200);
    expect(generation()).toBe(2);

    // The broken edit is reported with file:line:col ...
    const file = path.join(s.policiesDir, 'svc.yaml');
    const errorLines = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'error');
    expect(errorLines.some((l) => String(l.msg).includes(`${file}:9:54:`) && l.line === 9 && l.col === 54)).toBe(true);
    expect(errorLines.some((l) => String(l.msg).includes('still serving the last good policy set'))).toBe(true);
    // ... and in the metrics, while the old policy keeps answering.
    const m = parsePrometheus(await s.metrics.registry.metrics());
    expect(seriesValue(m, 'egress_authz_policy_reloads_total', { result: 'failed' })).toBe(1);
    expect(seriesValue(m, 'egress_authz_policy_reloads_total', { result: 'ok' })).toBe(2);
    expect(seriesValue(m, 'egress_authz_policy_last_reload_successful')).toBe(0);
    const after = await s.client.check({ host: 'svc.example' });
    expect(after.allowed).toBe(true);
    expect(versionOf(after)).toBe('v2');
    const ready = (await (await fetch(`${s.adminUrl}/readyz`)).json()) as { ready: boolean; lastReload: { ok: boolean; errors: number } };
    expect(ready.ready).toBe(true);
    expect(ready.lastReload).toMatchObject({ ok: false, errors: 1 });

    // Fixing the file recovers: the metric goes back to 1.
    s.writePolicy('svc.yaml', policy('v4'));
    await waitFor(() => generation() === 3, 'the fixed policy to load');
    expect(versionOf(await s.client.check({ host: 'svc.example' }))).toBe('v4');
    expect(seriesValue(parsePrometheus(await s.metrics.registry.metrics()), 'egress_authz_policy_last_reload_successful')).toBe(1);
  }, 180_000);

  it('reload() reports diagnostics and keeps serving the last good set (SIGHUP path)', async () => {
    server = await startTestServer({ files: { 'svc.yaml': policy('v1') } });
    fs.writeFileSync(path.join(server.policiesDir, 'svc.yaml'), BROKEN);
    const r = server.app.reload('SIGHUP');
    expect(r.ok).toBe(false);
    expect(r.diagnostics.map((d) => `${d.line}:${d.col}`)).toEqual(['9:54']);
    expect(versionOf(await server.client.check({ host: 'svc.example' }))).toBe('v1');
    fs.writeFileSync(path.join(server.policiesDir, 'svc.yaml'), policy('v2'));
    expect(server.app.reload('SIGHUP').ok).toBe(true);
    expect(versionOf(await server.client.check({ host: 'svc.example' }))).toBe('v2');
  });
});

describe('in-flight checks and reloads', () => {
  /** A stage that waits for `gate` before allowing, to hold a check in flight as long as the test wants. */
  function gatedSet(label: string, gate: Promise<void>): PolicySet {
    const stage: Stage = {
      evaluator: 'authorization',
      name: 'gate',
      async run() {
        await gate;
        return allow(label, 'authorization', `decided by the ${label} set`);
      },
    };
    const p = new CompiledPolicy(
      label,
      [{ name: label, kind: 'EgressPolicy', pos: { file: 'x', line: 1, col: 1 }, failurePolicy: 'Fail', when: [], variables: [], authorization: stage, response: { denials: {} } }],
      ['svc.example'],
      [label],
    );
    return new PolicySet([p], [], 1);
  }

  it('the Authorizer reads the active set once: a check started before a swap finishes on the old set', async () => {
    const services = new Services({ checkDeadlineMs: 5000, defaultDecision: 'deny' }, silentLogger, new Metrics());
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    let active = gatedSet('old', gate);
    const authorizer = new Authorizer(services, () => active);
    const view = toRequestView(deserializeCheckRequest(serializeCheckRequest(buildCheckRequest({ host: 'svc.example' }))));

    const inFlight = authorizer.check(view);
    active = gatedSet('new', gate); // the reload happens while the first check waits in its stage
    const later = authorizer.check(view);
    release();
    const [first, second] = await Promise.all([inFlight, later]);
    expect(first.decision).toMatchObject({ kind: 'allow', policy: 'old', reason: 'decided by the old set' });
    expect(second.decision).toMatchObject({ kind: 'allow', policy: 'new', reason: 'decided by the new set' });
    await services.close();
  });
});
