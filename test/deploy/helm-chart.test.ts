// The Helm chart (deploy/helm/egress-authz): its values match values.schema.json, it renders to the same
// objects as the kustomize base with default values, and each value changes what it says it changes.
// Rendered here with test/deploy/go-template.ts; with helm installed, the same objects come from
//   helm template egress-authz deploy/helm/egress-authz --namespace egress-authz
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { CHART_DIR, chartDefaultValues, chartMetadata, mergeValues, renderChart } from './helm.js';
import { DEPLOY_DIR, REPO_ROOT, findOne, isCoreKind, objectId, validateCoreObject, type K8sObject } from './k8s-objects.js';
import { kustomizeBuild } from './kustomize.js';
import { checkServerWiring, serverContainer, serverDeployment } from './server-wiring.js';

const BASE_DIR = path.join(DEPLOY_DIR, 'kubernetes', 'base');

function schemaValidator(): (values: unknown) => string[] {
  const schema = JSON.parse(fs.readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as object;
  const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
  return (values) => (validate(values) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`));
}

/**
 * The fields that make two installs the same: everything but labels and annotations (Helm adds its own
 * bookkeeping labels). Selectors are kept, so pods are selected by the same labels either way.
 */
function comparable(obj: K8sObject): K8sObject {
  const out = structuredClone(obj);
  delete out.metadata.labels;
  delete out.metadata.annotations;
  const template = (out.spec as { template?: { metadata?: unknown } } | undefined)?.template;
  if (template) delete template.metadata;
  return out;
}

function sortById(objects: K8sObject[]): K8sObject[] {
  return [...objects].sort((a, b) => objectId(a).localeCompare(objectId(b)));
}

function validateAll(objects: K8sObject[]): void {
  for (const obj of objects) {
    expect(isCoreKind(obj), objectId(obj)).toBe(true);
    expect(() => validateCoreObject(obj), objectId(obj)).not.toThrow();
  }
}

describe('values.schema.json', () => {
  const check = schemaValidator();

  it('accepts values.yaml', () => {
    expect(check(chartDefaultValues())).toEqual([]);
  });

  it('rejects wrong types, unknown keys and malformed URLs and durations', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ replicaCount: 'two' }, /replicaCount must be integer/],
      [{ replicas: 2 }, /must NOT have additional properties/],
      [{ logLevel: 'verbose' }, /logLevel must be equal to one of the allowed values/],
      [{ redis: { url: 'localhost:6379' } }, /redis\/url must match pattern/],
      [{ vault: { address: 'vault:8200' } }, /vault\/address must match pattern/],
      [{ shutdownTimeout: '15' }, /shutdownTimeout must match pattern/],
      [{ ports: { grpc: 70000 } }, /ports\/grpc must be <= 65535/],
      [{ policies: { inline: { 'a b.yaml': 'x' } } }, /property name must be valid/],
      [{ networkPolicy: { gatewayNamespaces: [] } }, /gatewayNamespaces must NOT have fewer than 1 items/],
    ];
    for (const [override, expected] of cases) {
      expect(check(mergeValues(chartDefaultValues(), override)).join('\n'), JSON.stringify(override)).toMatch(expected);
    }
  });
});

describe('Chart.yaml', () => {
  it('is a v2 application chart whose appVersion is the package version and the kustomize image tag', () => {
    const chart = chartMetadata();
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'egress-authz', type: 'application', appVersion: pkg.version });
    const image = serverContainer(serverDeployment(kustomizeBuild(BASE_DIR))).image!;
    expect(image.endsWith(`:${pkg.version}`)).toBe(true);
    expect(image).toBe(`${(chartDefaultValues().image as { repository: string }).repository}:${pkg.version}`);
  });
});

describe('helm template with default values', () => {
  const chart = renderChart();

  it('renders the same objects as the kustomize base (the chart leaves the Namespace to --create-namespace)', () => {
    const base = kustomizeBuild(BASE_DIR).filter((o) => o.kind !== 'Namespace');
    expect(sortById(chart.objects).map(objectId)).toEqual(sortById(base).map(objectId));
    expect(sortById(chart.objects).map(comparable)).toEqual(sortById(base).map(comparable));
  });

  it('labels every object and pod with the selector labels the kustomize base uses', () => {
    const baseSelector = serverDeployment(kustomizeBuild(BASE_DIR)).spec.selector.matchLabels!;
    for (const obj of chart.objects) {
      expect(obj.metadata.labels, objectId(obj)).toMatchObject({ ...baseSelector, 'app.kubernetes.io/managed-by': 'Helm' });
    }
    expect(serverDeployment(chart.objects).spec.template.metadata?.labels).toMatchObject(baseSelector);
  });

  it('is a consistent, valid install', () => {
    validateAll(chart.objects);
    expect(checkServerWiring(chart.objects)).toEqual([]);
  });

  it('prints NOTES with the gRPC address and the check command', () => {
    const notes = chart.files.get('NOTES.txt')!;
    expect(notes).toContain('egress-authz.egress-authz.svc.cluster.local:50051');
    expect(notes).toMatch(/egress-authz check --addr 127\.0\.0\.1:50051 --host \S+ --method \S+ --path \S+/);
  });

  it('differs from the base when a value changes (the comparison can fail)', () => {
    const changed = renderChart({ values: { resources: { requests: { cpu: '1' } } } });
    const base = kustomizeBuild(BASE_DIR).filter((o) => o.kind !== 'Namespace');
    expect(sortById(changed.objects).map(comparable)).not.toEqual(sortById(base).map(comparable));
  });
});

describe('chart values', () => {
  it('image, replicas, log level and extra args reach the Deployment', () => {
    const { objects } = renderChart({
      values: { image: { repository: 'registry.example/egress-authz', tag: '9.9.9' }, replicaCount: 3, logLevel: 'debug', decisionLog: 'deny', extraArgs: ['--workers', '4'] },
    });
    const deployment = serverDeployment(objects);
    const container = serverContainer(deployment);
    expect(container.image).toBe('registry.example/egress-authz:9.9.9');
    expect(deployment.spec.replicas).toBe(3);
    expect(container.args).toEqual(expect.arrayContaining(['--log-level', 'debug', '--decision-log', 'deny', '--workers', '4']));
    expect(container.args!.slice(container.args!.indexOf('--log-level'), container.args!.indexOf('--log-level') + 2)).toEqual(['--log-level', 'debug']);
    validateAll(objects);
    expect(checkServerWiring(objects)).toEqual([]);
  });

  it('redis.url and vault.address become the server environment', () => {
    const { objects } = renderChart({ values: { redis: { url: 'redis://redis.shared:6379/2' }, vault: { address: 'http://vault.vault.svc.cluster.local:8200' } } });
    const env = serverContainer(serverDeployment(objects)).env;
    expect(env).toEqual([
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=256 --initial-old-space-size=64' },
      { name: 'EGRESS_AUTHZ_REDIS_URL', value: 'redis://redis.shared:6379/2' },
      { name: 'EGRESS_AUTHZ_VAULT_ADDR', value: 'http://vault.vault.svc.cluster.local:8200' },
    ]);
    validateAll(objects);
  });

  it('redis.existingSecret takes the URL from a Secret, never inline', () => {
    const { objects } = renderChart({ values: { redis: { existingSecret: 'redis-credentials', existingSecretKey: 'url' } } });
    const env = serverContainer(serverDeployment(objects)).env!;
    expect(env).toEqual([
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=256 --initial-old-space-size=64' },
      { name: 'EGRESS_AUTHZ_REDIS_URL', valueFrom: { secretKeyRef: { name: 'redis-credentials', key: 'url' } } },
    ]);
    validateAll(objects);
  });

  it('maxOldSpaceMiB caps the V8 heap through NODE_OPTIONS, with initialOldSpaceMiB; 0 leaves them to Node', () => {
    const capped = serverContainer(serverDeployment(renderChart({ values: { maxOldSpaceMiB: 384 } }).objects)).env;
    expect(capped).toEqual([{ name: 'NODE_OPTIONS', value: '--max-old-space-size=384 --initial-old-space-size=64' }]);
    const capOnly = serverContainer(serverDeployment(renderChart({ values: { initialOldSpaceMiB: 0 } }).objects)).env;
    expect(capOnly).toEqual([{ name: 'NODE_OPTIONS', value: '--max-old-space-size=256' }]);
    const uncapped = serverContainer(serverDeployment(renderChart({ values: { maxOldSpaceMiB: 0 } }).objects)).env;
    expect(uncapped).toBeUndefined();
  });

  it('policies.existingConfigMap mounts that ConfigMap and creates none', () => {
    const { objects } = renderChart({ values: { policies: { existingConfigMap: 'team-policies' } } });
    expect(objects.some((o) => o.kind === 'ConfigMap')).toBe(false);
    const volumes = serverDeployment(objects).spec.template.spec.volumes!;
    expect(volumes.find((v) => v.name === 'policies')?.configMap?.name).toBe('team-policies');
    expect(checkServerWiring(objects)).toEqual([]);
  });

  it('policies.inline adds files to the defaults; a null drops a default file (Helm merges maps)', () => {
    const egress = 'apiVersion: egress-authz.dev/v1alpha1\nkind: EgressPolicy\nmetadata:\n  name: x\n';
    const configMapData = (values: Record<string, unknown>): Record<string, string> =>
      (findOne(renderChart({ values }).objects, 'ConfigMap') as K8sObject & { data: Record<string, string> }).data;
    const added = configMapData({ policies: { inline: { 'egress.yaml': egress } } });
    expect(added['egress.yaml']).toBe(egress);
    expect(Object.keys(added)).toContain('openai-access-control.yaml');
    const dropped = configMapData({
      policies: {
        inline: {
          'egress.yaml': egress,
          'openai-access-control.yaml': null,
          'openai-external-httproute.yaml': null,
          'openai-rate-limit.yaml': null,
        },
      },
    });
    expect(dropped).toEqual({ 'egress.yaml': egress });
  });

  it('networkPolicy.gatewayNamespaces admits each namespace to the gRPC port only; disabling drops the policy', () => {
    const { objects } = renderChart({ values: { networkPolicy: { gatewayNamespaces: ['gateway-system', 'default'] } } });
    const policy = findOne(objects, 'NetworkPolicy') as K8sObject & {
      spec: { ingress: { from?: { namespaceSelector: { matchLabels: Record<string, string> } }[]; ports: { port: number }[] }[] };
    };
    const grpcRule = policy.spec.ingress.find((r) => r.from)!;
    expect(grpcRule.from!.map((f) => f.namespaceSelector.matchLabels['kubernetes.io/metadata.name'])).toEqual(['gateway-system', 'default']);
    expect(grpcRule.ports).toEqual([{ port: 50051, protocol: 'TCP' }]);
    validateAll(objects);
    expect(renderChart({ values: { networkPolicy: { enabled: false } } }).objects.some((o) => o.kind === 'NetworkPolicy')).toBe(false);
  });

  it('ports move the listeners, container ports, Service, probes and NetworkPolicy together', () => {
    const { objects } = renderChart({ values: { ports: { grpc: 9001, admin: 9090 } } });
    expect(checkServerWiring(objects)).toEqual([]);
    const service = findOne(objects, 'Service') as K8sObject & { spec: { ports: { port: number }[] } };
    expect(service.spec.ports.map((p) => p.port)).toEqual([9001, 9090]);
  });

  it('an existing ServiceAccount, no RBAC, no PDB, a fullnameOverride', () => {
    const { objects } = renderChart({
      values: { serviceAccount: { create: false, name: 'shared-sa' }, rbac: { create: false }, podDisruptionBudget: { enabled: false }, fullnameOverride: 'authz' },
    });
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service']);
    const deployment = findOne(objects, 'Deployment', 'authz') as unknown as { spec: { template: { spec: { serviceAccountName: string; volumes: { configMap?: { name: string } }[] } } } };
    expect(deployment.spec.template.spec.serviceAccountName).toBe('shared-sa');
    expect(deployment.spec.template.spec.volumes.some((v) => v.configMap?.name === 'authz-policies')).toBe(true);
    expect(findOne(objects, 'ConfigMap').metadata.name).toBe('authz-policies');
  });

  it('scheduling values (nodeSelector, tolerations, podAnnotations) render as given', () => {
    const { objects } = renderChart({
      values: {
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'egress', operator: 'Exists', effect: 'NoSchedule' }],
        podAnnotations: { 'prometheus.io/scrape': 'true' },
        imagePullSecrets: [{ name: 'regcred' }],
      },
    });
    validateAll(objects);
    const deployment = findOne(objects, 'Deployment') as unknown as {
      spec: { template: { metadata: { annotations: Record<string, string> }; spec: Record<string, unknown> } };
    };
    expect(deployment.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
    expect(deployment.spec.template.spec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(deployment.spec.template.spec.tolerations).toEqual([{ key: 'egress', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(deployment.spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  });
});
