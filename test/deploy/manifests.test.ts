// Every YAML file under deploy/ parses, every Kubernetes object in it is valid for its kind, and the kustomize
// base is a consistent install of egress-authz (names, ports, probes, labels, RBAC, policies).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEPLOY_DIR,
  checkCustomResource,
  findOne,
  isCoreKind,
  loadObjects,
  loadYamlDocuments,
  objectId,
  parseYamlDocuments,
  validateCoreObject,
  yamlFilesUnder,
  type K8sObject,
} from './k8s-objects.js';
import { kustomizeBuild, readKustomization } from './kustomize.js';
import { renderChart } from './helm.js';
import { checkServerWiring, flagValue, serverContainer, serverDeployment } from './server-wiring.js';
import { SEED_POLICY_DIR } from '../support/test-server.js';

const BASE_DIR = path.join(DEPLOY_DIR, 'kubernetes', 'base');
const REDIS_COMPONENT_DIR = path.join(DEPLOY_DIR, 'kubernetes', 'components', 'redis');
const REDIS_OVERLAY_DIR = path.join(DEPLOY_DIR, 'kubernetes', 'overlays', 'shared-rate-limits');
const KGATEWAY_OVERLAY_DIR = path.join(DEPLOY_DIR, 'kubernetes', 'overlays', 'kgateway');
// The seed documents: ../shared/seeds/policies beside the checkout, else the byte-identical vendored copies.
const SEED_POLICIES_DIR = SEED_POLICY_DIR;
const SEEDS_PRESENT = fs.existsSync(SEED_POLICIES_DIR);
const HELM_DIR = path.join(DEPLOY_DIR, 'helm');
const ENVOY_DIR = path.join(DEPLOY_DIR, 'envoy');
// Applied with istioctl / istiod values, not kubectl: left out of deploy/istio/kustomization.yaml on purpose.
const NOT_FOR_KUBECTL_APPLY = new Set([path.join(DEPLOY_DIR, 'istio', 'mesh-config.yaml')]);

function validationProblems(obj: K8sObject): string[] {
  if (!isCoreKind(obj)) return checkCustomResource(obj);
  try {
    validateCoreObject(obj);
    return [];
  } catch (err) {
    return [`${objectId(obj)}: ${err instanceof Error ? err.message : String(err)}`];
  }
}

/** Kustomization files and the patch files they name: YAML, but not objects to validate on their own. */
function kustomizeFiles(): { kustomizations: string[]; patches: Set<string> } {
  const kustomizations = yamlFilesUnder(DEPLOY_DIR).filter((f) => path.basename(f) === 'kustomization.yaml');
  const patches = new Set<string>();
  for (const file of kustomizations) {
    for (const patch of readKustomization(path.dirname(file)).patches) patches.add(path.resolve(path.dirname(file), patch.path));
  }
  return { kustomizations, patches };
}

function kubectlAvailable(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

describe('every YAML file under deploy/', () => {
  const { kustomizations, patches } = kustomizeFiles();
  const manifestFiles = yamlFilesUnder(DEPLOY_DIR).filter(
    (f) => !f.startsWith(HELM_DIR + path.sep) && !f.startsWith(ENVOY_DIR + path.sep) && !kustomizations.includes(f) && !patches.has(f),
  );

  it('parses (Helm templates excepted: they are rendered first, in helm-chart.test.ts)', () => {
    const files = yamlFilesUnder(DEPLOY_DIR).filter((f) => !f.startsWith(path.join(HELM_DIR, 'egress-authz', 'templates')));
    expect(files.length).toBeGreaterThan(15);
    for (const file of files) expect(() => loadYamlDocuments(file), file).not.toThrow();
  });

  it('holds only Kubernetes objects that are valid for their kind (core kinds: kubernetes-models schemas)', () => {
    expect(manifestFiles.map((f) => path.relative(DEPLOY_DIR, f))).toEqual(
      expect.arrayContaining(['kubernetes/base/deployment.yaml', 'kgateway/ext-auth.yaml', 'istio/mesh-config.yaml']),
    );
    const problems: string[] = [];
    let count = 0;
    for (const file of manifestFiles) {
      for (const obj of loadObjects(file)) {
        count++;
        problems.push(...validationProblems(obj).map((p) => `${path.relative(DEPLOY_DIR, file)}: ${p}`));
      }
    }
    expect(problems).toEqual([]);
    expect(count).toBeGreaterThan(20);
  });

  it('has patches that are partial objects of a kind the patch targets', () => {
    expect(patches.size).toBeGreaterThan(0);
    for (const file of patches) {
      const [patch] = loadObjects(file);
      expect(['Deployment', 'ConfigMap'], file).toContain(patch!.kind);
    }
  });

  it('has kustomizations whose every entry exists and that leave no manifest out', () => {
    for (const file of kustomizations) {
      const dir = path.dirname(file);
      const kustomization = readKustomization(dir);
      const entries = [...kustomization.resources, ...kustomization.components, ...kustomization.patches.map((p) => p.path)];
      for (const entry of entries) expect(fs.existsSync(path.resolve(dir, entry)), `${file}: ${entry}`).toBe(true);
      const listed = new Set(entries.map((e) => path.resolve(dir, e)));
      const siblings = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
      const unlisted = siblings.filter((f) => !listed.has(path.join(dir, f)) && !NOT_FOR_KUBECTL_APPLY.has(path.join(dir, f)));
      expect(unlisted, `${file} leaves out`).toEqual([]);
    }
  });
});

describe('object validation', () => {
  it('rejects a core object that breaks its schema, and a custom resource with a misspelt or missing field', () => {
    const [deployment] = loadObjects(path.join(BASE_DIR, 'deployment.yaml'));
    const broken = structuredClone(deployment!) as K8sObject & { spec: { replicas: unknown } };
    broken.spec.replicas = 'two';
    expect(validationProblems(broken).join('\n')).toMatch(/replicas/);

    const extension = findOne(loadObjects(path.join(DEPLOY_DIR, 'kgateway', 'ext-auth.yaml')), 'GatewayExtension');
    const misspelt = structuredClone(extension) as K8sObject & { spec: { extAuth: Record<string, unknown> } };
    misspelt.spec.extAuth.failopen = misspelt.spec.extAuth.failOpen;
    delete misspelt.spec.extAuth.failOpen;
    expect(checkCustomResource(misspelt)).toEqual([expect.stringMatching(/unknown field spec\.extAuth\.failopen/)]);
    const missing = structuredClone(extension) as K8sObject & { spec: { extAuth: { grpcService: { backendRef: Record<string, unknown> } } } };
    delete missing.spec.extAuth.grpcService.backendRef.port;
    expect(checkCustomResource(missing)).toEqual([expect.stringMatching(/backendRef\.port is required/)]);
    expect(checkCustomResource({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } })).toEqual([
      expect.stringMatching(/neither a core kind nor a known custom resource/),
    ]);
  });
});

describe('kustomize base (deploy/kubernetes/base)', () => {
  const objects = kustomizeBuild(BASE_DIR);

  it('emits the install: Namespace, ServiceAccount, RBAC, policies, Deployment, Service, PDB, NetworkPolicy', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ClusterRoleBinding/egress-authz-auth-delegator',
        'ConfigMap/egress-authz-policies',
        'Deployment/egress-authz',
        'Namespace/egress-authz',
        'NetworkPolicy/egress-authz',
        'PodDisruptionBudget/egress-authz',
        'Role/egress-authz-api-keys',
        'RoleBinding/egress-authz-api-keys',
        'Service/egress-authz',
        'ServiceAccount/egress-authz',
      ].sort(),
    );
    for (const obj of objects) {
      if (obj.kind !== 'Namespace' && obj.kind !== 'ClusterRoleBinding') expect(obj.metadata.namespace, objectId(obj)).toBe('egress-authz');
      expect(obj.metadata.labels?.['app.kubernetes.io/part-of'], objectId(obj)).toBe('egress-authz');
      expect(validationProblems(obj)).toEqual([]);
    }
  });

  it('agrees with itself on names, ports, probes, labels, RBAC, security and shutdown', () => {
    expect(checkServerWiring(objects)).toEqual([]);
  });

  it('reports each inconsistency the wiring check is there to catch', () => {
    const broken = structuredClone(objects);
    const deployment = serverDeployment(broken);
    const container = serverContainer(deployment);
    container.readinessProbe!.httpGet!.path = '/ready';
    container.args![container.args!.indexOf('--listen') + 1] = '0.0.0.0:9000';
    deployment.spec.template.spec.serviceAccountName = 'default';
    deployment.spec.template.spec.terminationGracePeriodSeconds = 20;
    container.securityContext!.readOnlyRootFilesystem = false;
    const service = findOne(broken, 'Service', 'egress-authz') as K8sObject & { spec: { ports: { appProtocol?: string }[] } };
    delete service.spec.ports[0]!.appProtocol;
    const networkPolicy = findOne(broken, 'NetworkPolicy', 'egress-authz') as K8sObject & { spec: { ingress: { from?: unknown[] }[] } };
    delete networkPolicy.spec.ingress[0]!.from;
    const problems = checkServerWiring(broken).join('\n');
    for (const expected of [
      /readinessProbe path is \/ready/,
      /--listen \(0\.0\.0\.0:9000\)/,
      /serviceAccountName default/,
      /system:auth-delegator/,
      /terminationGracePeriodSeconds \(20\) must exceed --shutdown-delay \(5s\) \+ --shutdown-timeout \(15s\)/,
      /readOnlyRootFilesystem/,
      /appProtocol kubernetes\.io\/h2c/,
      /opens the gRPC port to every source/,
    ]) {
      expect(problems).toMatch(expected);
    }
  });

  it('ships the Kuadrant seed policy documents, unchanged, in the policies ConfigMap', () => {
    const configMap = findOne(objects, 'ConfigMap', 'egress-authz-policies') as K8sObject & { data: Record<string, string> };
    const files = Object.keys(configMap.data).sort();
    expect(files).toEqual(['openai-access-control.yaml', 'openai-external-httproute.yaml', 'openai-rate-limit.yaml']);
    const kinds = files.flatMap((file) => (parseYamlDocuments(configMap.data[file]!, file) as K8sObject[]).map((doc) => doc.kind));
    expect(kinds).toEqual(['AuthPolicy', 'HTTPRoute', 'RateLimitPolicy']);
    if (SEEDS_PRESENT) {
      for (const file of files) expect(configMap.data[file], file).toBe(fs.readFileSync(path.join(SEED_POLICIES_DIR, file), 'utf8'));
    }
  });

  it('is built the same by kubectl kustomize (base and both overlays)', (ctx) => {
    if (!kubectlAvailable()) ctx.skip('kubectl is not installed: the build is checked by test/deploy/kustomize.ts alone');
    for (const dir of [BASE_DIR, REDIS_OVERLAY_DIR, KGATEWAY_OVERLAY_DIR]) {
      const output = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
      const fromKubectl = parseYamlDocuments(output, `kubectl kustomize ${dir}`) as K8sObject[];
      const byId = (list: K8sObject[]): K8sObject[] => [...list].sort((a, b) => objectId(a).localeCompare(objectId(b)));
      expect(byId(kustomizeBuild(dir))).toEqual(byId(fromKubectl));
    }
  });
});

describe('Redis for shared rate limits (component and overlay)', () => {
  const objects = kustomizeBuild(REDIS_OVERLAY_DIR);

  it('adds a Redis the server is pointed at, reachable only from the server', () => {
    const container = serverContainer(serverDeployment(objects));
    const redisUrl = container.env?.find((e) => e.name === 'EGRESS_AUTHZ_REDIS_URL')?.value;
    expect(redisUrl).toBeDefined();
    const url = new URL(redisUrl!);
    expect(url.protocol).toBe('redis:');
    const service = findOne(objects, 'Service', url.hostname) as K8sObject & { spec: { ports: { port: number }[]; selector: Record<string, string> } };
    expect(service.spec.ports.map((p) => p.port)).toContain(Number(url.port));
    const redis = findOne(objects, 'Deployment', url.hostname) as K8sObject & { spec: { template: { metadata: { labels: Record<string, string> } } } };
    expect(Object.entries(service.spec.selector).every(([k, v]) => redis.spec.template.metadata.labels[k] === v)).toBe(true);
    const redisPolicy = findOne(objects, 'NetworkPolicy', url.hostname) as K8sObject & {
      spec: { ingress: { from: { podSelector?: { matchLabels: Record<string, string> } }[] }[] };
    };
    const serverLabels = serverDeployment(objects).spec.template.metadata!.labels!;
    const allowed = redisPolicy.spec.ingress.flatMap((rule) => rule.from.map((peer) => peer.podSelector?.matchLabels));
    expect(allowed).toHaveLength(1);
    expect(Object.entries(allowed[0]!).every(([k, v]) => serverLabels[k] === v)).toBe(true);
    for (const obj of objects) expect(validationProblems(obj)).toEqual([]);
    expect(checkServerWiring(objects)).toEqual([]);
  });

  it('keeps the component usable from any overlay: kind Component, patch by name', () => {
    const component = readKustomization(REDIS_COMPONENT_DIR);
    expect(component.kind).toBe('Component');
    expect(component.patches.every((p) => p.target?.kind === 'Deployment' && p.target.name === 'egress-authz')).toBe(true);
  });

  it('leaves the base without Redis (each replica counts alone unless the component is used)', () => {
    const base = serverContainer(serverDeployment(kustomizeBuild(BASE_DIR)));
    expect(base.env?.some((e) => e.name === 'EGRESS_AUTHZ_REDIS_URL') ?? false).toBe(false);
    expect(flagValue(base.args ?? [], '--redis-url')).toBeUndefined();
  });
});

describe('kgateway overlay', () => {
  it("adds the kgateway guide's Kyverno policy, unchanged, to the base policies", () => {
    const objects = kustomizeBuild(KGATEWAY_OVERLAY_DIR);
    const data = (findOne(objects, 'ConfigMap', 'egress-authz-policies') as K8sObject & { data: Record<string, string> }).data;
    expect(Object.keys(data).sort()).toEqual(['kyverno-demo-policy.yaml', 'openai-access-control.yaml', 'openai-external-httproute.yaml', 'openai-rate-limit.yaml']);
    const [kyverno] = parseYamlDocuments(data['kyverno-demo-policy.yaml']!, 'kyverno-demo-policy.yaml') as K8sObject[];
    expect([kyverno!.apiVersion, kyverno!.kind, kyverno!.metadata.name]).toEqual(['envoy.kyverno.io/v1alpha1', 'AuthorizationPolicy', 'demo-policy.example.com']);
    if (SEEDS_PRESENT) expect(data['kyverno-demo-policy.yaml']).toBe(fs.readFileSync(path.join(SEED_POLICIES_DIR, 'kyverno-demo-policy.yaml'), 'utf8'));
    for (const obj of objects) expect(validationProblems(obj)).toEqual([]);
    expect(checkServerWiring(objects)).toEqual([]);
  });
});

describe('Helm chart objects', () => {
  it('are valid for their kinds with default values', () => {
    for (const obj of renderChart().objects) expect(validationProblems(obj)).toEqual([]);
  });
});
