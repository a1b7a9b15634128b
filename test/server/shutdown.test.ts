// Graceful shutdown: health and readiness flip first, checks keep being answered during --shutdown-delay,
// in-flight checks are drained, the drain is bounded by --shutdown-timeout.
import { afterEach, describe, expect, it } from 'vitest';
import { CheckClient } from '../../src/cli/check-client.js';
import type { CheckOutcome } from '../../src/pipeline/authorizer.js';
import { allow } from '../../src/pipeline/decision.js';
import { startGrpcServer, type GrpcServerHandle } from '../../src/server/grpc-server.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { NOT_SERVING, SERVING, healthCheck, healthWatch, waitFor } from './ops-helpers.js';

const POLICY = `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: svc
spec:
  hosts: [svc.example]
  authorization:
    get-only:
      expression: request.method == "GET"
`;

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A gRPC server whose checks wait until the test releases them. */
async function gatedServer(): Promise<{ grpc: GrpcServerHandle; client: CheckClient; release(): void; waiting(): number }> {
  const waiters: Array<() => void> = [];
  const grpc = await startGrpcServer('127.0.0.1:0', () => new Promise<CheckOutcome>((resolve) => waiters.push(() => resolve({ decision: allow('svc', 'authorization'), secrets: [] }))));
  grpc.setServing(true);
  const client = new CheckClient(`127.0.0.1:${grpc.port}`);
  cleanup.push(() => client.close());
  return { grpc, client, release: () => waiters.splice(0).forEach((w) => w()), waiting: () => waiters.length };
}

describe('gRPC server shutdown', () => {
  it('answers every check in flight before it resolves, and accepts no new ones', async () => {
    const { grpc, client, release, waiting } = await gatedServer();
    const inFlight = [client.check({ host: 'svc.example' }), client.check({ host: 'svc.example' }), client.check({ host: 'svc.example' })];
    await waitFor(() => waiting() === 3, 'three checks in the handler');
    let closed = false;
    const shutdown = grpc.shutdown(10_000).then((r) => {
      closed = true;
      return r;
    });
    // Still draining: nothing was answered yet, and the shutdown waits.
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    expect(grpc.inflight()).toBe(3);
    release();
    const answers = await Promise.all(inFlight);
    expect(answers.every((a) => a.allowed)).toBe(true);
    expect(await shutdown).toEqual({ dropped: 0 });
    expect(grpc.counts()).toEqual({ started: 3, answered: 3 });
    // The port is closed: a new check cannot start.
    const fresh = new CheckClient(`127.0.0.1:${grpc.port}`);
    cleanup.push(() => fresh.close());
    await expect(fresh.check({ host: 'svc.example' }, 2000)).rejects.toMatchObject({ code: 14 });
  });

  it('gives up after the timeout and reports the checks it dropped', async () => {
    const { grpc, client, waiting } = await gatedServer();
    const stuck = client.check({ host: 'svc.example' }).then(
      () => 'answered',
      () => 'failed',
    );
    await waitFor(() => waiting() === 1, 'a check in the handler');
    expect(await grpc.shutdown(100)).toEqual({ dropped: 1 });
    expect(await stuck).toBe('failed');
  });
});

describe('app shutdown', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('flips readiness and gRPC health at once, keeps answering during the delay, then drains and closes', async () => {
    // A delay long enough that a busy machine still fits the checks below inside it.
    server = await startTestServer({ files: { 'svc.yaml': POLICY }, config: { shutdownDelayMs: 3000, shutdownTimeoutMs: 5000 } });
    const s = server;
    expect(await healthCheck(s.addr)).toBe(SERVING);
    expect((await fetch(`${s.adminUrl}/readyz`)).status).toBe(200);
    const watch = healthWatch(s.addr);
    cleanup.push(() => watch.close());
    await waitFor(() => watch.statuses.length === 1, 'the first Watch status');
    expect(watch.statuses).toEqual([SERVING]);

    const done = s.app.shutdown();
    // During the delay: not ready, NOT_SERVING, and still answering checks.
    const ready = await fetch(`${s.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, shuttingDown: true });
    expect((await fetch(`${s.adminUrl}/healthz`)).status).toBe(200);
    expect(await healthCheck(s.addr)).toBe(NOT_SERVING);
    await waitFor(() => watch.statuses.includes(NOT_SERVING), 'Watch to report NOT_SERVING');
    const during = await Promise.all(Array.from({ length: 20 }, () => s.client.check({ host: 'svc.example' })));
    expect(during.every((r) => r.allowed)).toBe(true);

    await done;
    await waitFor(() => watch.ended(), 'the Watch stream to end');
    expect(s.app.checkCounts()).toEqual({ started: 20, answered: 20 });
    await expect(fetch(`${s.adminUrl}/readyz`)).rejects.toThrow();
    const last = JSON.parse(s.logs.filter((l) => l.includes('shutdown complete')).at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ started: 20, answered: 20, dropped: 0 });
  });
});
