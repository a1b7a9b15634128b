// Kuadrant AuthPolicy / RateLimitPolicy (kuadrant.io/v1) as written, with the HTTPRoute they target
// (same file or directory) providing the hostnames.
import type { PolicyDocument } from '../document.js';
import type { YNode } from '../yaml-node.js';

/** Hostnames of the HTTPRoute a Kuadrant policy targets; reports a missing or unsupported target. */
export function targetHostnames(doc: PolicyDocument, routes: readonly PolicyDocument[]): string[] | undefined {
  const spec = doc.spec;
  const ref: YNode | undefined = spec.get('targetRef') ?? spec.get('targetRefs')?.items()[0];
  if (!ref) {
    spec.error(`${doc.kind} needs spec.targetRef (an HTTPRoute)`);
    return undefined;
  }
  const kind = ref.get('kind')?.string('targetRef.kind');
  const name = ref.get('name')?.string('targetRef.name');
  if (kind !== 'HTTPRoute') {
    (ref.get('kind') ?? ref).error(`targetRef.kind "${kind ?? ''}" is not supported: target an HTTPRoute`);
    return undefined;
  }
  const route = routes.find((r) => r.name === name && (r.namespace || doc.namespace) === doc.namespace);
  if (!route) {
    (ref.get('name') ?? ref).error(
      `targetRef: HTTPRoute "${name ?? ''}"${doc.namespace ? ` in namespace ${doc.namespace}` : ''} not found among the loaded documents (put it in the same file or directory)`,
    );
    return undefined;
  }
  const hosts = route.spec.get('hostnames')?.stringList('hostnames') ?? [];
  if (hosts.length === 0) route.spec.error(`HTTPRoute ${route.name} has no hostnames: a policy targeting it would match nothing`);
  return hosts;
}

export const AUTH_RULE_KEYS = ['authentication', 'metadata', 'authorization', 'response', 'callbacks'];
