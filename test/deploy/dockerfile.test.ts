// The container image: checked statically everywhere, and built and run where a Docker engine answers
// (`docker info` succeeds). Statically: a multi-stage build whose final stage has production dependencies
// only, runs node directly as PID 1 as a numeric non-root user, stops on SIGTERM and carries OCI labels.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copiesOf, execForm, isIgnored, labelsOf, parseDockerfile, type Stage } from './dockerfile.js';
import { DEPLOY_DIR, REPO_ROOT } from './k8s-objects.js';
import { kustomizeBuild } from './kustomize.js';
import { resolveContainerPort, serverContainer, serverDeployment } from './server-wiring.js';
import { chartDefaultValues } from './helm.js';

const DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8');
const PACKAGE = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const RUNTIME_PATHS = ['bin', 'dist', 'node_modules', 'package.json', 'policies', 'proto'];
const OCI_LABELS = ['title', 'description', 'version', 'revision', 'source'].map((l) => `org.opencontainers.image.${l}`);

function runsIn(stage: Stage, pattern: RegExp): boolean {
  return stage.instructions.some((i) => i.keyword === 'RUN' && pattern.test(i.args));
}

/** Everything the static checks require of a Dockerfile; empty when it passes. */
function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  const { stages } = parseDockerfile(text);
  const final = stages[stages.length - 1];
  if (stages.length < 2 || !final) return ['the build must be multi-stage'];
  const stageNamed = (name: string | undefined): Stage | undefined => stages.find((s) => s.name === name);
  const last = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword).pop();

  for (const stage of stages) {
    if (!/^node:20(\.|-|$)/.test(stage.image)) problems.push(`stage ${stage.name} is not on Node 20 (${stage.image})`);
  }

  // Production dependencies only: node_modules from a stage that ran `npm ci --omit=dev`, dist/ from the build.
  if (runsIn(final, /\bnpm\b/)) problems.push('the final stage runs npm (dependencies must come from a prod-only stage)');
  const copies = copiesOf(final);
  const modulesCopy = copies.find((c) => c.sources.some((s) => /node_modules\/?$/.test(s)));
  const modulesStage = stageNamed(modulesCopy?.from);
  if (!modulesStage || !runsIn(modulesStage, /npm ci\b.*--omit=dev/)) problems.push('node_modules must come from a stage that ran npm ci --omit=dev');
  if (modulesStage && runsIn(modulesStage, /npm run build|\btsc\b/)) problems.push('node_modules comes from the build stage (dev dependencies included)');
  const distCopy = copies.find((c) => c.sources.some((s) => /dist\/?$/.test(s)));
  const distStage = stageNamed(distCopy?.from);
  if (!distStage || !runsIn(distStage, /npm run build/)) problems.push('dist/ must come from a stage that ran npm run build');
  const shipped = copies.flatMap((c) => c.sources.map((s) => s.replace(/^\/src\//, '').replace(/\/$/, '')));
  for (const needed of RUNTIME_PATHS) if (!shipped.includes(needed)) problems.push(`the final stage does not copy ${needed}`);
  for (const unwanted of ['src', 'test', '.']) if (copies.some((c) => !c.from && c.sources.includes(unwanted))) problems.push(`the final stage copies ${unwanted}`);

  // Runs as a numeric, non-root user.
  const user = last('USER')?.args;
  const uid = user ? /^(\d+)(?::(\d+))?$/.exec(user) : null;
  if (!uid) problems.push(`USER must be a numeric UID[:GID], got ${user}`);
  else if (Number(uid[1]) === 0) problems.push('USER must not be root (0)');

  // node is PID 1: exec-form ENTRYPOINT with node, never npm or a shell; the command is `serve ...`.
  const entrypoint = execForm(last('ENTRYPOINT'));
  if (!entrypoint) problems.push('ENTRYPOINT must be in exec (JSON) form');
  else if (entrypoint[0] !== 'node' || entrypoint[1] !== 'bin/egress-authz.js') {
    problems.push(`ENTRYPOINT must be ["node", "bin/egress-authz.js"], got ${JSON.stringify(entrypoint)}`);
  }
  const cmd = execForm(last('CMD'));
  if (!cmd || cmd[0] !== 'serve') problems.push('CMD must be the exec form of `serve ...`');
  if (/\b(npm|sh|bash)\b/.test(`${last('ENTRYPOINT')?.args} ${last('CMD')?.args}`)) problems.push('ENTRYPOINT/CMD must not go through npm or a shell');
  if (last('STOPSIGNAL')?.args !== 'SIGTERM') problems.push('STOPSIGNAL must be SIGTERM');

  const labels = labelsOf(final);
  for (const label of OCI_LABELS) if (!labels.get(label)) problems.push(`LABEL ${label} is missing`);
  return problems;
}

function dockerEngineAvailable(): boolean {
  return spawnSync('docker', ['info'], { stdio: 'ignore', timeout: 15_000 }).status === 0;
}

describe('Dockerfile (static)', () => {
  const { stages, globalArgs } = parseDockerfile(DOCKERFILE);
  const final = stages[stages.length - 1]!;

  it('meets every requirement: stages, prod-only dependencies, non-root numeric USER, node as PID 1, SIGTERM, OCI labels', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'prod-deps', 'runtime']);
    expect(dockerfileProblems(DOCKERFILE)).toEqual([]);
  });

  it('reports each way the requirements can be broken', () => {
    const broken = (from: string | RegExp, to: string): string => {
      const text = DOCKERFILE.replace(from, to);
      expect(text).not.toBe(DOCKERFILE);
      return dockerfileProblems(text).join('\n');
    };
    expect(broken('USER 1000:1000', 'USER node')).toMatch(/numeric UID/);
    expect(broken('USER 1000:1000', 'USER 0')).toMatch(/not be root/);
    expect(broken('ENTRYPOINT ["node", "bin/egress-authz.js"]', 'ENTRYPOINT ["npm", "start"]')).toMatch(/ENTRYPOINT must be/);
    expect(broken('ENTRYPOINT ["node", "bin/egress-authz.js"]', 'ENTRYPOINT node bin/egress-authz.js')).toMatch(/exec \(JSON\) form/);
    expect(broken('STOPSIGNAL SIGTERM', 'STOPSIGNAL SIGKILL')).toMatch(/STOPSIGNAL/);
    expect(broken('COPY --from=prod-deps /src/node_modules', 'COPY --from=build /src/node_modules')).toMatch(/node_modules/);
    expect(broken('npm ci --omit=dev', 'npm ci')).toMatch(/--omit=dev/);
    expect(broken('org.opencontainers.image.revision=', 'org.example.revision=')).toMatch(/LABEL org\.opencontainers\.image\.revision/);
    expect(broken('COPY proto/ ./proto/\n# Example', '# Example')).toMatch(/does not copy proto/);
    expect(broken(/ENV NODE_ENV=production/, 'ENV NODE_ENV=production\nRUN npm install')).toMatch(/runs npm/);
  });

  it('runs as the UID the Kubernetes manifests and chart declare', () => {
    const uid = Number(final.instructions.filter((i) => i.keyword === 'USER').pop()!.args.split(':')[0]);
    const podSecurity = serverDeployment(kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'base'))).spec.template.spec.securityContext!;
    expect(podSecurity.runAsUser).toBe(uid);
    expect((chartDefaultValues().podSecurityContext as { runAsUser: number }).runAsUser).toBe(uid);
  });

  it('exposes and listens on the ports the Deployment declares', () => {
    const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number));
    const cmd = execForm(final.instructions.filter((i) => i.keyword === 'CMD').pop())!;
    const listenPort = (flag: string) => Number(cmd[cmd.indexOf(flag) + 1]!.split(':').pop());
    const container = serverContainer(serverDeployment(kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'base'))));
    expect(exposed.sort()).toEqual([resolveContainerPort(container, 'grpc'), resolveContainerPort(container, 'admin')].sort());
    expect(listenPort('--listen')).toBe(resolveContainerPort(container, 'grpc'));
    expect(listenPort('--admin-listen')).toBe(resolveContainerPort(container, 'admin'));
  });

  it('labels the image with the package version and builds with the package build script', () => {
    const versionArg = final.instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('VERSION='))?.args.split('=')[1];
    expect(versionArg).toBe(PACKAGE.version);
    expect(globalArgs.get('NODE_IMAGE')).toMatch(/^node:20\.\d+/);
    expect(PACKAGE.scripts.build).toMatch(/^tsc -p tsconfig\.build\.json$/);
    expect(fs.readFileSync(path.join(REPO_ROOT, 'bin', 'egress-authz.js'), 'utf8')).toContain("'../dist/main.js'");
  });

  it('has a build context (.dockerignore) with what the Dockerfile copies and nothing else', () => {
    const contextSources = stages.flatMap((s) => copiesOf(s).filter((c) => !c.from).flatMap((c) => c.sources));
    expect(contextSources.length).toBeGreaterThan(5);
    for (const source of contextSources) {
      expect(isIgnored(DOCKERIGNORE, source), source).toBe(false);
      expect(fs.existsSync(path.join(REPO_ROOT, source)), source).toBe(true);
    }
    for (const kept of ['bin/egress-authz.js', 'src/main.ts', 'proto/ext_authz.proto', 'package-lock.json']) expect(isIgnored(DOCKERIGNORE, kept), kept).toBe(false);
    const leftOut = ['node_modules', 'node_modules/typescript/package.json', 'dist/main.js', '.git/config', 'scratch/notes.md'];
    leftOut.push('test/deploy/dockerfile.test.ts', 'deploy/envoy/envoy.yaml', '.env');
    for (const left of leftOut) expect(isIgnored(DOCKERIGNORE, left), left).toBe(true);
    expect(isIgnored('*\n!bin/\n', 'bin/x.js')).toBe(false);
    expect(isIgnored('node_modules\n', 'node_modules/a/b')).toBe(true);
  });

  it('keeps dev-only packages out: none of them is a production dependency', () => {
    const production = Object.keys(PACKAGE.dependencies);
    for (const dev of ['typescript', 'vitest', 'tsx', 'kubernetes-models']) {
      expect(Object.keys(PACKAGE.devDependencies)).toContain(dev);
      expect(production).not.toContain(dev);
    }
  });
});

describe('Docker image (needs a Docker engine)', () => {
  it('builds, runs read-only as non-root, serves /healthz and exits 0 on SIGTERM', (ctx) => {
    if (!dockerEngineAvailable()) ctx.skip('no Docker engine here (`docker info` failed); the Dockerfile is checked statically above');
    const tag = `egress-authz:test-${process.pid}`;
    const docker = (args: string[], timeout = 120_000): string => execFileSync('docker', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout }).trim();
    docker(['build', '--build-arg', 'REVISION=test', '-t', tag, '.'], 900_000);
    let container = '';
    try {
      type ImageConfig = { User: string; Entrypoint: string[]; StopSignal: string; Labels: Record<string, string> };
      const [config] = JSON.parse(docker(['image', 'inspect', tag])) as { Config: ImageConfig }[];
      expect(config!.Config.User).toBe('1000:1000');
      expect(config!.Config.Entrypoint).toEqual(['node', 'bin/egress-authz.js']);
      expect(config!.Config.StopSignal).toBe('SIGTERM');
      expect(config!.Config.Labels['org.opencontainers.image.version']).toBe(PACKAGE.version);

      // Production dependencies only, and the compiled entry point is there.
      const probe = [
        "const fs = require('fs');",
        "const dev = ['typescript', 'vitest', 'tsx'].filter((p) => fs.existsSync('node_modules/' + p));",
        "console.log(JSON.stringify({ dev, main: fs.existsSync('dist/main.js'), uid: process.getuid() }));",
      ].join('\n');
      expect(JSON.parse(docker(['run', '--rm', '--read-only', '--entrypoint', 'node', tag, '-e', probe]))).toEqual({ dev: [], main: true, uid: 1000 });

      container = docker(['run', '-d', '--read-only', '--tmpfs', '/tmp', '-p', '127.0.0.1::8080', tag]);
      const hostPort = docker(['port', container, '8080/tcp']).split(':').pop();
      let healthy = false;
      for (let attempt = 0; attempt < 60 && !healthy; attempt++) {
        const fetchHealthz = `fetch('http://127.0.0.1:${hostPort}/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`;
        const result = spawnSync('node', ['-e', fetchHealthz], { timeout: 5_000 });
        healthy = result.status === 0;
        if (!healthy) spawnSync('sleep', ['0.5']);
      }
      expect(healthy).toBe(true);
      docker(['stop', '--time', '20', container], 60_000);
      expect(docker(['inspect', '--format', '{{.State.ExitCode}}', container])).toBe('0');
    } finally {
      if (container) spawnSync('docker', ['rm', '-f', container], { stdio: 'ignore' });
      spawnSync('docker', ['image', 'rm', '-f', tag], { stdio: 'ignore' });
    }
  }, 1_200_000);
});
