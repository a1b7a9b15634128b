// The gateway wiring users copy: kgateway (GatewayExtension + TrafficPolicy), Istio (extensionProviders +
// CUSTOM AuthorizationPolicy) and standalone Envoy must point at the egress-authz Service that deploy/kubernetes
// creates, fail closed, and keep the seeds' own gateway, route and ServiceEntry documents unchanged.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEPLOY_DIR, findOne, isRecord, loadObjects, loadYamlDocuments, parseYamlDocuments, valuesAt, type K8sObject } from './k8s-objects.js';
import { kustomizeBuild } from './kustomize.js';
import { durationMs, isSubset, namespacesAdmittedToGrpc, serverDeployment } from './server-wiring.js';

// The seed guides live outside the repository; where they are not mounted, the seed comparisons are skipped.
const SEEDS_DIR = path.resolve(import.meta.dirname, '../../../shared/seeds');
const SEEDS_PRESENT = fs.existsSync(SEEDS_DIR);
const base = kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'base'));
const service = findOne(base, 'Service', 'egress-authz') as K8sObject & { spec: { ports: { name: string; port: number; appProtocol?: string }[] } };
const grpcPort = service.spec.ports.find((p) => p.appProtocol === 'kubernetes.io/h2c')!.port;
const serverPodLabels = serverDeployment(base).spec.template.metadata!.labels!;
const ENVOY_EXT_AUTHZ_TIMEOUT_MS = 200;

function objectsIn(dir: string): K8sObject[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
    .flatMap((f) => loadObjects(path.join(dir, f)));
}

/** The YAML fed to `kubectl apply -f - <<EOF ... EOF` in the kgateway seed guide, as objects. */
function kgatewaySeedObjects(): K8sObject[] {
  const text = fs.readFileSync(path.join(SEEDS_DIR, 'kgateway-istio-kyverno-egress.md'), 'utf8');
  const blocks = [...text.matchAll(/<<EOF\n([\s\S]*?)\nEOF/g)].map((m) => m[1]!);
  return blocks.flatMap((block, i) => parseYamlDocuments(block, `seed block ${i + 1}`) as K8sObject[]);
}

/** The policy documents in the policies ConfigMap of a kustomize build. */
function policyDocuments(objects: K8sObject[]): K8sObject[] {
  const configMap = findOne(objects, 'ConfigMap', 'egress-authz-policies') as K8sObject & { data: Record<string, string> };
  return Object.entries(configMap.data).flatMap(([file, text]) => parseYamlDocuments(text, file) as K8sObject[]);
}

describe('kgateway wiring (deploy/kgateway)', () => {
  const objects = objectsIn(path.join(DEPLOY_DIR, 'kgateway'));
  const seed = SEEDS_PRESENT ? kgatewaySeedObjects() : [];
  const extension = findOne(objects, 'GatewayExtension') as K8sObject & {
    spec: { type?: string; extAuth: { failOpen?: boolean; grpcService: { backendRef: { name: string; namespace?: string; port: number }; requestTimeout?: string } } };
  };
  const trafficPolicy = findOne(objects, 'TrafficPolicy') as K8sObject & {
    spec: { targetRefs: { group: string; kind: string; name: string }[]; extAuth: { extensionRef: { name: string; namespace?: string }; contextExtensions?: Record<string, string> } };
  };

  it("keeps the seed's Gateway, ServiceEntry and HTTPRoute as published", (ctx) => {
    if (!SEEDS_PRESENT) ctx.skip(`the seed guides are not mounted at ${SEEDS_DIR}`);
    for (const kind of ['Gateway', 'ServiceEntry', 'HTTPRoute']) {
      expect(findOne(objects, kind), kind).toEqual(findOne(seed, kind));
    }
  });

  it("keeps the seed's TrafficPolicy (target, retries, timeouts) and only repoints its extAuth", (ctx) => {
    if (!SEEDS_PRESENT) ctx.skip(`the seed guides are not mounted at ${SEEDS_DIR}`);
    const seedPolicy = structuredClone(findOne(seed, 'TrafficPolicy')) as K8sObject & { spec: Record<string, unknown> };
    const ours = structuredClone(trafficPolicy) as K8sObject & { spec: Record<string, unknown> };
    delete seedPolicy.spec.extAuth;
    delete ours.spec.extAuth;
    expect(ours).toEqual(seedPolicy);
  });

  it('points the GatewayExtension at the egress-authz gRPC Service, failing closed within Envoy’s deadline', () => {
    expect(extension.spec.type).toBe('ExtAuth');
    expect(extension.spec.extAuth.failOpen).toBe(false);
    const ref = extension.spec.extAuth.grpcService.backendRef;
    expect(ref.name).toBe(service.metadata.name);
    expect(ref.namespace ?? extension.metadata.namespace).toBe(service.metadata.namespace);
    expect(ref.port).toBe(grpcPort);
    const timeout = extension.spec.extAuth.grpcService.requestTimeout;
    expect(timeout && durationMs(timeout)).toBeLessThanOrEqual(ENVOY_EXT_AUTHZ_TIMEOUT_MS);
  });

  it('grants the cross-namespace reference with a ReferenceGrant in the Service namespace', () => {
    const grant = findOne(objects, 'ReferenceGrant') as K8sObject & {
      spec: { from: { group: string; kind: string; namespace: string }[]; to: { group: string; kind: string; name?: string }[] };
    };
    expect(grant.metadata.namespace).toBe(service.metadata.namespace);
    expect(grant.spec.from).toContainEqual({ group: 'gateway.kgateway.dev', kind: 'GatewayExtension', namespace: extension.metadata.namespace });
    expect(grant.spec.to.some((to) => to.group === '' && to.kind === 'Service' && (to.name ?? service.metadata.name) === service.metadata.name)).toBe(true);
  });

  it('attaches ExtAuth to the route and selects a policy document that the kgateway overlay serves', () => {
    expect(trafficPolicy.spec.extAuth.extensionRef.name).toBe(extension.metadata.name);
    expect(trafficPolicy.spec.extAuth.extensionRef.namespace ?? trafficPolicy.metadata.namespace).toBe(extension.metadata.namespace);
    for (const target of trafficPolicy.spec.targetRefs) {
      const route = findOne(objects, target.kind, target.name);
      expect(route.metadata.namespace).toBe(trafficPolicy.metadata.namespace);
    }
    const policyName = trafficPolicy.spec.extAuth.contextExtensions?.policy;
    expect(policyName).toBeDefined();
    expect(policyDocuments(kustomizeBuild(path.join(DEPLOY_DIR, 'kubernetes', 'overlays', 'kgateway'))).map((doc) => doc.metadata.name)).toContain(policyName);
    expect(policyDocuments(base).map((doc) => doc.metadata.name)).not.toContain(policyName);
  });

  it('lets the kgateway proxy pods, and only those, through the NetworkPolicy to the gRPC port', () => {
    const gateway = findOne(objects, 'Gateway');
    const policy = findOne(objects, 'NetworkPolicy') as K8sObject & {
      spec: {
        podSelector: { matchLabels: Record<string, string> };
        ingress: { from: { namespaceSelector?: { matchLabels: Record<string, string> }; podSelector?: { matchLabels: Record<string, string> } }[]; ports: { port: number }[] }[];
      };
    };
    expect(policy.metadata.namespace).toBe(service.metadata.namespace);
    expect(isSubset(policy.spec.podSelector.matchLabels, serverPodLabels)).toBe(true);
    expect(policy.spec.ingress).toHaveLength(1);
    const [rule] = policy.spec.ingress;
    expect(rule!.ports.map((p) => p.port)).toEqual([grpcPort]);
    expect(rule!.from).toEqual([
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': gateway.metadata.namespace } },
        podSelector: { matchLabels: { 'gateway.networking.k8s.io/gateway-name': gateway.metadata.name } },
      },
    ]);
  });
});

describe('Istio wiring (deploy/istio)', () => {
  const objects = objectsIn(path.join(DEPLOY_DIR, 'istio'));
  const operator = findOne(objects, 'IstioOperator');
  const providers = valuesAt(operator, 'spec.meshConfig.extensionProviders[]') as {
    name: string;
    envoyExtAuthzGrpc: { service: string; port: number; timeout?: string; failOpen?: boolean };
  }[];
  const authorizationPolicy = findOne(objects, 'AuthorizationPolicy') as K8sObject & {
    spec: { action: string; provider: { name: string }; targetRefs?: { group: string; kind: string; name: string }[]; rules: unknown[] };
  };
  const gateway = findOne(objects, 'Gateway');

  it('registers egress-authz as an envoyExtAuthzGrpc provider: Service FQDN, gRPC port, fail closed, 200 ms', () => {
    expect(providers).toHaveLength(1);
    const grpc = providers[0]!.envoyExtAuthzGrpc;
    expect(grpc.service).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    expect(grpc.port).toBe(grpcPort);
    expect(grpc.failOpen).toBe(false);
    expect(grpc.timeout && durationMs(grpc.timeout)).toBeLessThanOrEqual(ENVOY_EXT_AUTHZ_TIMEOUT_MS);
  });

  it('sends every request through the egress gateway to that provider (CUSTOM, non-empty rules)', () => {
    expect(authorizationPolicy.spec.action).toBe('CUSTOM');
    expect(authorizationPolicy.spec.provider.name).toBe(providers[0]!.name);
    expect(authorizationPolicy.metadata.namespace).toBe(gateway.metadata.namespace);
    expect(authorizationPolicy.spec.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: gateway.metadata.name }]);
    expect(authorizationPolicy.spec.rules.length).toBeGreaterThan(0);
  });

  it("routes api.openai.com as the Kuadrant seed does, with TLS origination, and the route is the policies' target", () => {
    const route = findOne(objects, 'HTTPRoute');
    if (SEEDS_PRESENT) expect(route).toEqual(loadYamlDocuments(path.join(SEEDS_DIR, 'policies', 'openai-external-httproute.yaml'))[0]);
    expect(policyDocuments(base).find((doc) => doc.kind === 'HTTPRoute')).toEqual(route);
    const parent = (route.spec as { parentRefs: { name: string; namespace: string }[] }).parentRefs[0]!;
    expect([parent.name, parent.namespace]).toEqual([gateway.metadata.name, gateway.metadata.namespace]);
    expect(findOne(objects, 'ServiceEntry').spec).toEqual({
      hosts: ['api.openai.com'],
      ports: [{ number: 443, name: 'https', protocol: 'HTTPS' }],
      location: 'MESH_EXTERNAL',
      resolution: 'DNS',
    });
    expect(findOne(objects, 'DestinationRule').spec).toEqual({ host: 'api.openai.com', trafficPolicy: { tls: { mode: 'SIMPLE', sni: 'api.openai.com' } } });
  });

  it("admits the gateway's namespace through the base NetworkPolicy", () => {
    expect(namespacesAdmittedToGrpc(base)).toContain(gateway.metadata.namespace);
  });
});

describe('standalone Envoy (deploy/envoy/envoy.yaml)', () => {
  const [config] = loadYamlDocuments(path.join(DEPLOY_DIR, 'envoy', 'envoy.yaml'));
  type Cluster = { name: string; typed_extension_protocol_options?: Record<string, unknown>; load_assignment: unknown };
  const staticResources = (config as { static_resources: { listeners: unknown[]; clusters: Cluster[] } }).static_resources;
  const httpFilters = valuesAt(staticResources, 'listeners[].filter_chains[].filters[].typed_config.http_filters[]') as {
    name: string;
    typed_config: Record<string, unknown>;
  }[];

  it('runs ext_authz over gRPC v3 with a 200 ms timeout, failing closed, before the router', () => {
    const names = httpFilters.map((f) => f.name);
    expect(names).toEqual(['envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    const extAuthz = httpFilters[0]!.typed_config as {
      '@type': string;
      transport_api_version: string;
      failure_mode_allow: boolean;
      grpc_service: { envoy_grpc: { cluster_name: string }; timeout: string };
    };
    expect(extAuthz['@type']).toBe('type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    expect(extAuthz.transport_api_version).toBe('V3');
    expect(extAuthz.failure_mode_allow).toBe(false);
    expect(durationMs(extAuthz.grpc_service.timeout)).toBe(ENVOY_EXT_AUTHZ_TIMEOUT_MS);
  });

  it('sends checks over HTTP/2 to the egress-authz gRPC port', () => {
    const clusterName = valuesAt(httpFilters[0], 'typed_config.grpc_service.envoy_grpc.cluster_name')[0];
    const cluster = staticResources.clusters.find((c) => c.name === clusterName);
    expect(cluster).toBeDefined();
    const options = cluster!.typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    expect(valuesAt(options, 'explicit_http_config.http2_protocol_options')[0]).toEqual({});
    const addresses = valuesAt(cluster, 'load_assignment.endpoints[].lb_endpoints[].endpoint.address.socket_address') as { address: string; port_value: number }[];
    expect(addresses).toEqual([{ address: `${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`, port_value: grpcPort }]);
  });

  it('uses only v3 typed configs', () => {
    const types = JSON.stringify(config).match(/"@type":"[^"]+"/g) ?? [];
    expect(types.length).toBeGreaterThan(3);
    for (const type of types) expect(type).toMatch(/type\.googleapis\.com\/envoy\.[a-z_.0-9]+\.v3\.[A-Za-z]+"/);
    expect(isRecord(config)).toBe(true);
  });
});
