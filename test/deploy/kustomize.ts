// A small kustomize build for deploy/kubernetes: resources (files and directories), components, strategic-merge
// patches, `namespace`, and `labels` / `commonLabels`. It throws on any other kustomization field, so a
// kustomization that grows beyond what this models fails the tests instead of being half-built.
// Where kubectl is installed, the tests compare this build with `kubectl kustomize`.
import fs from 'node:fs';
import path from 'node:path';
import { isRecord, loadObjects, loadYamlDocuments, type K8sObject } from './k8s-objects.js';

const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'labels', 'commonLabels', 'resources', 'components', 'patches']);

const CLUSTER_SCOPED_KINDS = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass']);
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

interface LabelSet {
  pairs: Record<string, string>;
  includeSelectors: boolean;
  includeTemplates: boolean;
}

interface Patch {
  path: string;
  target?: { kind?: string; name?: string };
}

interface Kustomization {
  kind: 'Kustomization' | 'Component';
  namespace?: string;
  labels: LabelSet[];
  resources: string[];
  components: string[];
  patches: Patch[];
}

export function readKustomization(dir: string): Kustomization {
  const file = path.join(dir, 'kustomization.yaml');
  const [doc] = loadYamlDocuments(file);
  if (!isRecord(doc)) throw new Error(`${file}: not a mapping`);
  for (const key of Object.keys(doc)) {
    if (!SUPPORTED_FIELDS.has(key)) throw new Error(`${file}: field '${key}' is not modelled by test/deploy/kustomize.ts`);
  }
  const labels: LabelSet[] = [];
  if (isRecord(doc.commonLabels)) {
    labels.push({ pairs: doc.commonLabels as Record<string, string>, includeSelectors: true, includeTemplates: true });
  }
  for (const entry of (doc.labels as unknown[] | undefined) ?? []) {
    if (!isRecord(entry) || !isRecord(entry.pairs)) throw new Error(`${file}: labels entries need pairs`);
    labels.push({
      pairs: entry.pairs as Record<string, string>,
      includeSelectors: entry.includeSelectors === true,
      includeTemplates: entry.includeTemplates === true || entry.includeSelectors === true,
    });
  }
  return {
    kind: doc.kind === 'Component' ? 'Component' : 'Kustomization',
    namespace: typeof doc.namespace === 'string' ? doc.namespace : undefined,
    labels,
    resources: (doc.resources as string[] | undefined) ?? [],
    components: (doc.components as string[] | undefined) ?? [],
    patches: (doc.patches as Patch[] | undefined) ?? [],
  };
}

/** The objects `kustomize build dir` would emit (in resource order). */
export function kustomizeBuild(dir: string): K8sObject[] {
  const kustomization = readKustomization(dir);
  let objects: K8sObject[] = [];
  for (const resource of kustomization.resources) {
    const full = path.resolve(dir, resource);
    objects.push(...(fs.statSync(full).isDirectory() ? kustomizeBuild(full) : loadObjects(full)));
  }
  for (const component of kustomization.components) {
    objects = applyKustomization(objects, path.resolve(dir, component), { includeResources: true });
  }
  return applyKustomization(objects, dir, { includeResources: false });
}

function applyKustomization(input: K8sObject[], dir: string, options: { includeResources: boolean }): K8sObject[] {
  const kustomization = readKustomization(dir);
  let objects = input.map((o) => structuredClone(o));
  if (options.includeResources) {
    if (kustomization.kind !== 'Component') throw new Error(`${dir}: components must be kind Component`);
    for (const resource of kustomization.resources) objects.push(...loadObjects(path.resolve(dir, resource)));
  }
  for (const patch of kustomization.patches) objects = applyPatch(objects, dir, patch);
  if (kustomization.namespace) objects = objects.map((o) => setNamespace(o, kustomization.namespace!));
  for (const labelSet of kustomization.labels) objects = objects.map((o) => addLabels(o, labelSet));
  return objects;
}

function applyPatch(objects: K8sObject[], dir: string, patch: Patch): K8sObject[] {
  const [patchDoc] = loadObjects(path.resolve(dir, patch.path));
  const kind = patch.target?.kind ?? patchDoc!.kind;
  const name = patch.target?.name ?? patchDoc!.metadata.name;
  const matches = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  if (matches.length !== 1) throw new Error(`${dir}: patch ${patch.path} matches ${matches.length} objects`);
  return objects.map((o) => (o === matches[0] ? (strategicMerge(o, patchDoc) as K8sObject) : o));
}

/** Strategic merge as kustomize does it for our patches: maps merge, lists of named items merge by name. */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isRecord(base) && isRecord(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) out[key] = key in base ? strategicMerge(base[key], value) : value;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(patch) && patch.every((item) => isRecord(item) && typeof item.name === 'string')) {
    // Named items the base lacks come first, in patch order (as `kubectl kustomize` orders them); the rest merge in place.
    const out = [...base];
    const added: unknown[] = [];
    for (const item of patch as Record<string, unknown>[]) {
      const index = out.findIndex((existing) => isRecord(existing) && existing.name === item.name);
      if (index === -1) added.push(item);
      else out[index] = strategicMerge(out[index], item);
    }
    return [...added, ...out];
  }
  return patch;
}

function setNamespace(obj: K8sObject, namespace: string): K8sObject {
  const out = structuredClone(obj);
  if (!CLUSTER_SCOPED_KINDS.has(out.kind)) out.metadata.namespace = namespace;
  // kustomize also moves ServiceAccount subjects of (Cluster)RoleBindings into the namespace.
  if ((out.kind === 'RoleBinding' || out.kind === 'ClusterRoleBinding') && Array.isArray(out.subjects)) {
    for (const subject of out.subjects as Record<string, unknown>[]) {
      if (subject.kind === 'ServiceAccount') subject.namespace = namespace;
    }
  }
  return out;
}

function addLabels(obj: K8sObject, labelSet: LabelSet): K8sObject {
  const out = structuredClone(obj);
  out.metadata.labels = { ...(out.metadata.labels ?? {}), ...labelSet.pairs };
  const spec = out.spec;
  if (!isRecord(spec)) return out;
  if (labelSet.includeTemplates && WORKLOAD_KINDS.has(out.kind) && isRecord(spec.template)) {
    const template = spec.template as { metadata?: { labels?: Record<string, string> } };
    template.metadata = { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), ...labelSet.pairs } };
  }
  if (labelSet.includeSelectors) {
    if (out.kind === 'Service') spec.selector = { ...((spec.selector as Record<string, string>) ?? {}), ...labelSet.pairs };
    else if (isRecord(spec.selector) && isRecord(spec.selector.matchLabels)) {
      spec.selector.matchLabels = { ...spec.selector.matchLabels, ...labelSet.pairs };
    }
  }
  return out;
}
