// Loading Kubernetes objects from YAML and checking them: core kinds against the kubernetes-models schemas,
// the custom resources we emit (Gateway API, kgateway, Istio) against their required fields and known keys.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEPLOY_DIR = path.join(REPO_ROOT, 'deploy');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every YAML document of a file (empty documents dropped); a syntax error throws with file:line. */
export function loadYamlDocuments(file: string): unknown[] {
  return parseYamlDocuments(fs.readFileSync(file, 'utf8'), file);
}

export function parseYamlDocuments(text: string, label: string): unknown[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const out: unknown[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${label}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export function asK8sObject(value: unknown, label: string): K8sObject {
  if (
    !isRecord(value) ||
    typeof value.apiVersion !== 'string' ||
    typeof value.kind !== 'string' ||
    !isRecord(value.metadata) ||
    typeof value.metadata.name !== 'string' ||
    value.metadata.name === ''
  ) {
    throw new Error(`${label}: not a Kubernetes object (apiVersion, kind and metadata.name are required)`);
  }
  return value as K8sObject;
}

export function loadObjects(file: string): K8sObject[] {
  return loadYamlDocuments(file).map((doc, i) => asK8sObject(doc, `${file} document ${i + 1}`));
}

export function objectId(obj: K8sObject): string {
  return `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

/** Finds exactly one object of a kind (and name, when given). */
export function findOne(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Core kinds: kubernetes-models' generated JSON-schema validators.

interface Validatable {
  validate(): void;
}
type ModelConstructor = new (data: never) => Validatable;

const CORE_MODELS: Record<string, ModelConstructor> = {
  'v1/Namespace': Namespace as unknown as ModelConstructor,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelConstructor,
  'v1/ConfigMap': ConfigMap as unknown as ModelConstructor,
  'v1/Service': Service as unknown as ModelConstructor,
  'apps/v1/Deployment': Deployment as unknown as ModelConstructor,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as ModelConstructor,
  'rbac.authorization.k8s.io/v1/Role': Role as unknown as ModelConstructor,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding as unknown as ModelConstructor,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelConstructor,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelConstructor,
};

export function isCoreKind(obj: K8sObject): boolean {
  return `${obj.apiVersion}/${obj.kind}` in CORE_MODELS;
}

/** Throws (with the schema's message) when a core object does not match its schema. */
export function validateCoreObject(obj: K8sObject): void {
  const Model = CORE_MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`${objectId(obj)}: no kubernetes-models schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(structuredClone(obj) as never).validate();
}

// ---------------------------------------------------------------------------------------------------------------
// Custom resources: required fields, enums and the keys the CRDs know (a misspelt key is silently dropped by
// a structural CRD, so it is an error here).

/** Values at a dotted path where `[]` steps into every list element: `spec.listeners[].port`. */
export function valuesAt(obj: unknown, dotted: string): unknown[] {
  let current: unknown[] = [obj];
  for (const part of dotted.split('.')) {
    const intoList = part.endsWith('[]');
    const key = intoList ? part.slice(0, -2) : part;
    const next: unknown[] = [];
    for (const value of current) {
      if (!isRecord(value) || !(key in value)) {
        next.push(undefined);
        continue;
      }
      const child = value[key];
      if (intoList) {
        if (!Array.isArray(child) || child.length === 0) next.push(undefined);
        else next.push(...(child as unknown[]));
      } else {
        next.push(child);
      }
    }
    current = next;
  }
  return current;
}

interface CrdRules {
  required: string[];
  /** Path -> the keys allowed in the object at that path. */
  knownKeys?: Record<string, string[]>;
  /** Path -> allowed values. */
  enums?: Record<string, unknown[]>;
}

const GATEWAY_API_ROUTE_KEYS = ['parentRefs', 'hostnames', 'rules'];

const CRD_RULES: Record<string, CrdRules> = {
  'gateway.networking.k8s.io/v1/Gateway': {
    required: ['spec.gatewayClassName', 'spec.listeners[].name', 'spec.listeners[].port', 'spec.listeners[].protocol'],
    knownKeys: {
      spec: ['gatewayClassName', 'listeners', 'addresses', 'infrastructure'],
      'spec.listeners[]': ['name', 'hostname', 'port', 'protocol', 'tls', 'allowedRoutes'],
    },
    enums: { 'spec.listeners[].protocol': ['HTTP', 'HTTPS', 'TLS', 'TCP', 'UDP'] },
  },
  'gateway.networking.k8s.io/v1/HTTPRoute': {
    required: ['spec.parentRefs[].name', 'spec.rules[].backendRefs[].name', 'spec.rules[].backendRefs[].port'],
    knownKeys: {
      spec: GATEWAY_API_ROUTE_KEYS,
      'spec.parentRefs[]': ['group', 'kind', 'namespace', 'name', 'sectionName', 'port'],
      'spec.rules[]': ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence'],
      'spec.rules[].backendRefs[]': ['group', 'kind', 'name', 'namespace', 'port', 'weight', 'filters'],
    },
  },
  'gateway.networking.k8s.io/v1beta1/ReferenceGrant': {
    required: ['spec.from[].group', 'spec.from[].kind', 'spec.from[].namespace', 'spec.to[].group', 'spec.to[].kind'],
    knownKeys: {
      spec: ['from', 'to'],
      'spec.from[]': ['group', 'kind', 'namespace'],
      'spec.to[]': ['group', 'kind', 'name'],
    },
  },
  'gateway.kgateway.dev/v1alpha1/GatewayExtension': {
    required: ['spec.extAuth.grpcService.backendRef.name', 'spec.extAuth.grpcService.backendRef.port'],
    knownKeys: {
      spec: ['type', 'extAuth', 'extProc', 'rateLimit', 'jwt', 'oauth2'],
      'spec.extAuth': [
        'grpcService',
        'httpService',
        'headersToForward',
        'failOpen',
        'clearRouteCache',
        'withRequestBody',
        'statusOnError',
        'statPrefix',
        'percentageEnabled',
      ],
      'spec.extAuth.grpcService': ['backendRef', 'authority', 'requestTimeout', 'retry'],
      'spec.extAuth.grpcService.backendRef': ['group', 'kind', 'name', 'namespace', 'port', 'weight'],
    },
    enums: { 'spec.type': ['ExtAuth', 'ExtProc', 'RateLimit', 'JWT', 'OAuth2', undefined] },
  },
  'gateway.kgateway.dev/v1alpha1/TrafficPolicy': {
    required: ['spec.targetRefs[].group', 'spec.targetRefs[].kind', 'spec.targetRefs[].name'],
    knownKeys: {
      spec: ['targetRefs', 'targetSelectors', 'extAuth', 'extProc', 'rateLimit', 'retry', 'timeouts', 'headerModifiers', 'rbac', 'cors', 'csrf', 'buffer', 'transformation'],
      'spec.extAuth': ['extensionRef', 'withRequestBody', 'contextExtensions', 'disable'],
      'spec.extAuth.extensionRef': ['name', 'namespace'],
      'spec.retry': ['retryOn', 'attempts', 'perTryTimeout', 'statusCodes', 'backoffBaseInterval'],
      'spec.timeouts': ['request', 'streamIdle'],
    },
  },
  'networking.istio.io/v1/ServiceEntry': {
    required: ['spec.hosts', 'spec.ports[].number', 'spec.ports[].name', 'spec.ports[].protocol', 'spec.resolution'],
    knownKeys: { spec: ['hosts', 'addresses', 'ports', 'location', 'resolution', 'endpoints', 'workloadSelector', 'exportTo', 'subjectAltNames'] },
    enums: {
      'spec.location': ['MESH_EXTERNAL', 'MESH_INTERNAL', undefined],
      'spec.resolution': ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'],
      'spec.ports[].protocol': ['HTTP', 'HTTPS', 'GRPC', 'HTTP2', 'MONGO', 'TCP', 'TLS'],
    },
  },
  'networking.istio.io/v1/DestinationRule': {
    required: ['spec.host'],
    knownKeys: {
      spec: ['host', 'trafficPolicy', 'subsets', 'exportTo', 'workloadSelector'],
      'spec.trafficPolicy.tls': ['mode', 'clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni', 'insecureSkipVerify', 'caCrl'],
    },
    enums: { 'spec.trafficPolicy.tls.mode': ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL', undefined] },
  },
  'security.istio.io/v1/AuthorizationPolicy': {
    required: ['spec.action', 'spec.provider.name', 'spec.rules'],
    knownKeys: { spec: ['selector', 'targetRef', 'targetRefs', 'rules', 'action', 'provider'] },
    enums: { 'spec.action': ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] },
  },
  'install.istio.io/v1alpha1/IstioOperator': {
    required: [
      'spec.meshConfig.extensionProviders[].name',
      'spec.meshConfig.extensionProviders[].envoyExtAuthzGrpc.service',
      'spec.meshConfig.extensionProviders[].envoyExtAuthzGrpc.port',
    ],
    knownKeys: {
      'spec.meshConfig.extensionProviders[].envoyExtAuthzGrpc': [
        'service',
        'port',
        'timeout',
        'failOpen',
        'statusOnError',
        'includeRequestBodyInCheck',
        'clearRouteCache',
      ],
    },
  },
};
// The seed's ServiceEntry is networking.istio.io/v1beta1: same schema as v1.
CRD_RULES['networking.istio.io/v1beta1/ServiceEntry'] = CRD_RULES['networking.istio.io/v1/ServiceEntry']!;

export function isKnownCustomResource(obj: K8sObject): boolean {
  return `${obj.apiVersion}/${obj.kind}` in CRD_RULES;
}

/** Problems with a custom resource (empty when it passes). */
export function checkCustomResource(obj: K8sObject): string[] {
  const rules = CRD_RULES[`${obj.apiVersion}/${obj.kind}`];
  if (!rules) return [`${objectId(obj)}: ${obj.apiVersion} ${obj.kind} is neither a core kind nor a known custom resource`];
  const problems: string[] = [];
  for (const required of rules.required) {
    if (valuesAt(obj, required).some((v) => v === undefined || v === null)) {
      problems.push(`${objectId(obj)}: ${required} is required`);
    }
  }
  for (const [at, keys] of Object.entries(rules.knownKeys ?? {})) {
    for (const value of valuesAt(obj, at)) {
      if (!isRecord(value)) continue;
      for (const key of Object.keys(value)) {
        if (!keys.includes(key)) problems.push(`${objectId(obj)}: unknown field ${at}.${key}`);
      }
    }
  }
  for (const [at, allowed] of Object.entries(rules.enums ?? {})) {
    for (const value of valuesAt(obj, at)) {
      if (!allowed.includes(value)) problems.push(`${objectId(obj)}: ${at} is ${String(value)}, not one of ${allowed.join(', ')}`);
    }
  }
  return problems;
}

/** Every YAML file under a directory (recursively), sorted. */
export function yamlFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFilesUnder(full));
    else if (/\.ya?ml$/.test(entry.name)) out.push(full);
  }
  return out.sort();
}
