// Operations, end to end against the real CLI (`node bin/egress-authz.js serve`, the build in dist/):
// SIGTERM during a load burst (every started check answered, readiness and gRPC health flip, exit 0),
// `--workers 2` (two workers on one port, summed /metrics, SIGHUP reloads both, SIGTERM drains both),
// and a start-up with broken policies (exit 2, file:line:col on stderr). `npm test` builds dist first.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makePolicyDir } from '../support/test-server.js';
import {
  NOT_SERVING,
  SERVING,
  SeparateConnectionClient,
  healthWatch,
  parsePrometheus,
  seriesValue,
  startPump,
  waitFor,
} from '../server/ops-helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(ROOT, 'bin/egress-authz.js');

beforeAll(() => {
  // This test runs the built CLI; a stale build would test old code.
  const sources = ['src/server/app.ts', 'src/server/cluster.ts', 'src/server/grpc-server.ts', 'src/server/watch.ts', 'src/cli/serve.ts', 'src/config.ts'];
  for (const src of sources) {
    const built = path.join(ROOT, 'dist', src.replace(/^src\//, '').replace(/\.ts$/, '.js'));
    if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npx tsc -p tsconfig.build.json\` (npm test does)`);
    if (fs.statSync(built).mtimeMs < fs.statSync(path.join(ROOT, src)).mtimeMs) {
      throw new Error(`${built} is older than ${src}: run \`npx tsc -p tsconfig.build.json\` (npm test does)`);
    }
  }
});

function policy(version: string): string {
  return `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: svc
spec:
  hosts: [svc.example]
  authorization:
    get-only:
      expression: request.method == "GET"
  response:
    success:
      headers:
        x-policy-version: '"${version}"'
`;
}

interface ServeProcess {
  readonly proc: ChildProcess;
  /** Parsed JSON log lines from stdout (workers and primary share it). */
  readonly lines: Array<Record<string, unknown>>;
  stderr(): string;
  readonly exited: Promise<number | null>;
  line(pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const running: ServeProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
});

function serve(args: string[]): ServeProcess {
  const proc = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--watch', 'false', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let partial = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ unparsed: p });
      }
    }
  });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const p: ServeProcess = {
    proc,
    lines,
    stderr: () => err,
    exited,
    line: (pred, what, timeoutMs = 30_000) =>
      waitFor(() => lines.find(pred) ?? (proc.exitCode !== null ? Promise.reject(new Error(`exited before ${what}: ${err}`)) : undefined), what, timeoutMs),
  };
  running.push(p);
  return p;
}

/** OPS_TEST_REPORT=1 prints the figures behind the assertions (how many checks, how many after SIGTERM). */
function report(what: string, figures: Record<string, unknown>): void {
  if (process.env.OPS_TEST_REPORT) console.log(what, JSON.stringify(figures));
}

async function readyStatus(adminPort: number): Promise<number | 'down'> {
  try {
    return (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status;
  } catch {
    return 'down';
  }
}

describe('serve: graceful shutdown (one process)', () => {
  it('SIGTERM during a load burst: not ready + NOT_SERVING at once, every started check answered, exit 0', async () => {
    const dir = makePolicyDir({ 'svc.yaml': policy('v1') });
    const p = serve(['--policies', dir, '--decision-log', 'off', '--shutdown-delay', '3s', '--shutdown-timeout', '20s']);
    const up = await p.line((l) => l.msg === 'egress-authz serving', 'the server to start');
    const addr = `127.0.0.1:${up.grpc as number}`;
    const admin = up.admin as number;
    expect(await readyStatus(admin)).toBe(200);
    const watch = healthWatch(addr);
    await waitFor(() => watch.statuses[0] === SERVING, 'Watch to report SERVING');

    const clients = Array.from({ length: 4 }, () => new SeparateConnectionClient(addr));
    let n = 0;
    let signalled = false;
    const pump = startPump(() => clients[n++ % clients.length]!.check({ host: 'svc.example' }, 60_000), 200, () => (signalled ? 'after' : 'before'));
    await waitFor(() => pump.records.length >= 500, '500 answers before SIGTERM', 60_000);
    p.proc.kill('SIGTERM');
    signalled = true;

    // Readiness and health flip while the process still answers (the 3 s delay).
    const readyDuringDrain = await waitFor(async () => {
      const s = await readyStatus(admin);
      return s === 200 ? undefined : String(s);
    }, 'readiness to flip');
    expect(readyDuringDrain).toBe('503');
    await waitFor(() => watch.statuses.includes(NOT_SERVING), 'Watch to report NOT_SERVING');
    // Load continues until the server stops accepting; then wait for the exit.
    await waitFor(() => pump.records.some((r) => r.error) || p.proc.exitCode !== null, 'the port to close', 60_000);
    const records = await pump.stop();
    const code = await p.exited;
    watch.close();
    clients.forEach((c) => c.close());

    expect(code).toBe(0);
    const done = p.lines.find((l) => l.msg === 'shutdown complete')!;
    report('single', { checks: records.length, afterSigterm: records.filter((r) => r.tag === 'after').length, refused: records.filter((r) => r.error).length, server: done, drainStart: p.lines.find((l) => String(l.msg).startsWith('shutting down: stopped accepting')) });
    expect(done).toBeDefined();
    const answeredByClient = records.filter((r) => r.result);
    // Every check the server started was answered, and every answer reached its client.
    expect(done.dropped).toBe(0);
    expect(done.answered).toBe(done.started);
    expect(answeredByClient).toHaveLength(done.answered as number);
    expect(answeredByClient.every((r) => r.result!.allowed)).toBe(true);
    // Checks sent after SIGTERM were still answered during the delay.
    expect(answeredByClient.filter((r) => r.tag === 'after').length).toBeGreaterThan(0);
    // What failed never started: the port was closed (UNAVAILABLE), nothing was cut off mid-way.
    expect([...new Set(records.filter((r) => r.error).map((r) => r.error!.code))]).toEqual([14]);
  }, 120_000);

  it('exits 2 with file:line:col when the policies do not load', async () => {
    const dir = makePolicyDir({ 'svc.yaml': policy('v1').replace('request.method == "GET"', 'request.method == "GET" && request.nosuchfield') });
    const p = serve(['--policies', dir]);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain(`${path.join(dir, 'svc.yaml')}:9:54:`);
  }, 60_000);
});

describe('serve --workers 2', () => {
  it('two workers answer on one port; /metrics sums them; SIGHUP reloads both; SIGTERM drains both and exits 0', async () => {
    const dir = makePolicyDir({ 'svc.yaml': policy('v1') });
    const p = serve(['--policies', dir, '--workers', '2', '--decision-log', 'deny', '--shutdown-delay', '2s', '--shutdown-timeout', '20s']);
    const up = await p.line((l) => l.msg === 'egress-authz serving', 'the primary to report serving', 60_000);
    expect(up).toMatchObject({ role: 'primary', workers: 2 });
    const addr = `127.0.0.1:${up.grpc as number}`;
    const admin = up.admin as number;
    const ready = (await (await fetch(`http://127.0.0.1:${admin}/readyz`)).json()) as { ready: boolean; workers: Array<{ ready: boolean }> };
    expect(ready.ready).toBe(true);
    expect(ready.workers.map((w) => w.ready)).toEqual([true, true]);

    // Six connections: the primary hands them to the workers in turn. Denies are logged (--decision-log deny)
    // with the worker's id.
    const clients = Array.from({ length: 6 }, () => new SeparateConnectionClient(addr));
    let successes = 0;
    const denies = await Promise.all(clients.flatMap((c) => Array.from({ length: 5 }, () => c.check({ host: 'nobody.example' }))));
    successes += denies.length;
    expect(denies.every((d) => d.httpStatus === 403)).toBe(true);
    await waitFor(() => p.lines.filter((l) => l.msg === 'decision').length === 30, '30 decision lines');
    const workersSeen = new Set(p.lines.filter((l) => l.msg === 'decision').map((l) => l.worker));
    expect(workersSeen.size).toBe(2);

    const metrics = parsePrometheus(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text());
    expect(seriesValue(metrics, 'egress_authz_checks_total', { policy: '(none)', decision: 'deny', status: '403' })).toBe(30);
    expect(seriesValue(metrics, 'egress_authz_policy_reloads_total', { result: 'ok' })).toBe(2); // one start-up load per worker
    expect(seriesValue(metrics, 'egress_authz_policies_loaded')).toBe(1);
    expect(seriesValue(metrics, 'egress_authz_policy_last_reload_successful')).toBe(1);

    // SIGHUP to the primary reloads every worker.
    fs.writeFileSync(path.join(dir, 'svc.yaml'), policy('v2'));
    p.proc.kill('SIGHUP');
    await waitFor(() => p.lines.filter((l) => l.msg === 'policies reloaded' && l.trigger === 'SIGHUP').length === 2, 'both workers to reload');
    const afterReload = await Promise.all(clients.map((c) => c.check({ host: 'svc.example' })));
    successes += afterReload.length;
    expect(afterReload.map((r) => r.headers.find((h) => h.key === 'x-policy-version')?.value)).toEqual(Array(6).fill('v2'));

    // SIGTERM during a load burst over all six connections.
    let n = 0;
    const pump = startPump(() => clients[n++ % clients.length]!.check({ host: 'svc.example' }, 60_000), 120, () => 0);
    await waitFor(() => pump.records.length >= 300, '300 answers before SIGTERM', 60_000);
    p.proc.kill('SIGTERM');
    const readyDuringDrain = await waitFor(async () => {
      const s = await readyStatus(admin);
      return s === 200 ? undefined : String(s);
    }, 'primary readiness to flip');
    expect(readyDuringDrain).toBe('503');
    await waitFor(() => pump.records.some((r) => r.error) || p.proc.exitCode !== null, 'the port to close', 60_000);
    const records = await pump.stop();
    const code = await p.exited;
    clients.forEach((c) => c.close());

    expect(code).toBe(0);
    const workerDone = p.lines.filter((l) => l.msg === 'shutdown complete' && l.worker !== undefined);
    expect(workerDone).toHaveLength(2);
    for (const w of workerDone) {
      expect(w.dropped).toBe(0);
      expect(w.answered).toBe(w.started);
    }
    successes += records.filter((r) => r.result).length;
    report('workers', { burst: records.length, refused: records.filter((r) => r.error).length, workers: workerDone });
    const answeredByWorkers = workerDone.reduce((sum, w) => sum + (w.answered as number), 0);
    expect(successes).toBe(answeredByWorkers);
    expect([...new Set(records.filter((r) => r.error).map((r) => r.error!.code))].every((c) => c === 14)).toBe(true);
    expect(p.lines.find((l) => l.msg === 'shutdown complete: all workers exited')).toMatchObject({ role: 'primary', code: 0 });
  }, 180_000);

  it('replaces a worker that dies, staying ready and answering meanwhile', async () => {
    const dir = makePolicyDir({ 'svc.yaml': policy('v1') });
    const p = serve(['--policies', dir, '--workers', '2', '--decision-log', 'off']);
    const up = await p.line((l) => l.msg === 'egress-authz serving', 'the primary to report serving', 60_000);
    const addr = `127.0.0.1:${up.grpc as number}`;
    const readyz = async () => (await (await fetch(`http://127.0.0.1:${up.admin as number}/readyz`)).json()) as { ready: boolean; workers: Array<{ pid: number; ready: boolean }> };
    const before = await readyz();
    const victim = before.workers[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await p.line((l) => l.msg === 'worker died; starting a replacement', 'the primary to notice');
    // The other worker keeps the port answering and the pod ready.
    expect((await readyz()).ready).toBe(true);
    const client = new SeparateConnectionClient(addr);
    expect((await client.check({ host: 'svc.example' })).allowed).toBe(true);
    client.close();
    const after = await waitFor(async () => {
      const r = await readyz();
      return r.workers.every((w) => w.ready) && !r.workers.some((w) => w.pid === victim) ? r : undefined;
    }, 'a replacement worker', 60_000);
    expect(after.workers).toHaveLength(2);
    // New connections are answered again with both workers in rotation.
    const clients = Array.from({ length: 4 }, () => new SeparateConnectionClient(addr));
    expect((await Promise.all(clients.map((c) => c.check({ host: 'svc.example' })))).every((r) => r.allowed)).toBe(true);
    clients.forEach((c) => c.close());
    p.proc.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }, 120_000);

  it('fails the start (exit 2, one message) when the policies do not load in the workers', async () => {
    const dir = makePolicyDir({ 'svc.yaml': policy('v1').replace('request.method == "GET"', 'request.method == "GET" && request.nosuchfield') });
    const p = serve(['--policies', dir, '--workers', '2']);
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain(`${path.join(dir, 'svc.yaml')}:9:54:`);
    expect(p.stderr().match(/do not load/g)).toHaveLength(1);
  }, 60_000);
});
