// The manifests against the real server: the policies they ship load, and a server started with the
// Deployment's own args (only the addresses and the policy directory moved to a temp dir and free loopback
// ports) answers the Deployment's probes, turns not-ready on SIGTERM and exits 0.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEPLOY_DIR, REPO_ROOT, findOne, type K8sObject } from './k8s-objects.js';
import { kustomizeBuild } from './kustomize.js';
import { flagValue, serverContainer, serverDeployment } from './server-wiring.js';

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes a build's policies ConfigMap out as the kubelet would mount it. */
function mountPolicies(objects: K8sObject[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-policies-'));
  tempDirs.push(dir);
  const data = (findOne(objects, 'ConfigMap', 'egress-authz-policies') as K8sObject & { data: Record<string, string> }).data;
  for (const [file, text] of Object.entries(data)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}

/** Runs the CLI from source (as bin/egress-authz.js runs it from dist/). */
function runCli(args: string[]): ChildProcess {
  const script = `import('./src/main.ts').then(async (m) => { process.exitCode = await m.main(${JSON.stringify(args)}); })`;
  return spawn(process.execPath, ['--import', 'tsx', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; output: string }> {
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function httpStatus(url: string): Promise<number | undefined> {
  try {
    return (await fetch(url)).status;
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting: ${what}`);
}

describe('the shipped policies load in the real server (egress-authz lint)', () => {
  it.each([
    ['base', path.join(DEPLOY_DIR, 'kubernetes', 'base')],
    ['kgateway overlay', path.join(DEPLOY_DIR, 'kubernetes', 'overlays', 'kgateway')],
  ])('%s', async (_name, dir) => {
    const { code, output } = await exitOf(runCli(['lint', mountPolicies(kustomizeBuild(dir))]));
    expect(output).toMatch(/no errors/);
    expect(code).toBe(0);
  });

  it('and lint fails on a broken document (so the two above can fail)', async () => {
    const dir = mountPolicies(kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'base')));
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'apiVersion: kuadrant.io/v1\nkind: AuthPolicy\nmetadata:\n  name: broken\nspec: [\n');
    const { code } = await exitOf(runCli(['lint', dir]));
    expect(code).not.toBe(0);
  });
});

describe("a server run with the Deployment's args", () => {
  it('answers the liveness and readiness probes, turns not-ready on SIGTERM and exits 0', async () => {
    const objects = kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'base'));
    const container = serverContainer(serverDeployment(objects));
    const [grpcPort, adminPort] = [await freePort(), await freePort()];
    const args = [...container.args!];
    const replace = (flag: string, value: string): void => {
      expect(flagValue(args, flag), flag).toBeDefined();
      args[args.indexOf(flag) + 1] = value;
    };
    replace('--policies', mountPolicies(objects));
    replace('--listen', `127.0.0.1:${grpcPort}`);
    replace('--admin-listen', `127.0.0.1:${adminPort}`);
    replace('--log-level', 'error');

    const child = runCli(args);
    const exited = exitOf(child);
    const probe = (p: { httpGet?: { path?: string } } | undefined) => `http://127.0.0.1:${adminPort}${p!.httpGet!.path}`;
    try {
      await waitFor(async () => (await httpStatus(probe(container.readinessProbe))) === 200, 'readiness probe 200');
      expect(await httpStatus(probe(container.livenessProbe))).toBe(200);
      expect(await httpStatus(probe(container.startupProbe))).toBe(200);

      child.kill('SIGTERM');
      // During --shutdown-delay the pod is taken out of the endpoints but stays alive (liveness still passes).
      await waitFor(async () => (await httpStatus(probe(container.readinessProbe))) === 503, 'readiness probe 503 after SIGTERM');
      expect(await httpStatus(probe(container.livenessProbe))).toBe(200);
      const { code, output } = await exited;
      expect(code, output).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});
