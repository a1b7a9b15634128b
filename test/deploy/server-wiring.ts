// Cross-object checks for an egress-authz install (kustomize build or rendered chart): the Deployment, its
// Service, ServiceAccount, RBAC, policies ConfigMap, PodDisruptionBudget and NetworkPolicy must agree on names,
// ports, probe paths and labels. Returns a list of problems so a test can show every one at once.
import { findOne, isRecord, type K8sObject } from './k8s-objects.js';

export const SERVER_NAME = 'egress-authz';

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Probe {
  httpGet?: { path?: string; port: number | string };
}
export interface PodSpec {
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string }; emptyDir?: Record<string, unknown> }[];
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: { matchLabels?: Record<string, string> } }[];
}
export interface DeploymentShape {
  metadata: { name: string; namespace?: string };
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
  };
}

export function serverDeployment(objects: K8sObject[]): DeploymentShape {
  return findOne(objects, 'Deployment', SERVER_NAME) as unknown as DeploymentShape;
}

export function serverContainer(deployment: DeploymentShape): Container {
  const container = deployment.spec.template.spec.containers.find((c) => c.name === SERVER_NAME);
  if (!container) throw new Error(`Deployment ${deployment.metadata.name} has no container ${SERVER_NAME}`);
  return container;
}

/** The value of `--flag VALUE` (or `--flag=VALUE`) in a container's args. */
export function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return undefined;
}

/** Go-style durations as the CLI takes them: 150ms, 0.2s, 15s, 1m30s. */
export function durationMs(text: string): number {
  const parts = [...text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`not a duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((total, p) => total + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}

function portOf(listen: string | undefined): number | undefined {
  const match = listen ? /:(\d+)$/.exec(listen) : null;
  return match ? Number(match[1]) : undefined;
}

export function isSubset(subset: Record<string, string> | undefined, of: Record<string, string> | undefined): boolean {
  if (!subset || Object.keys(subset).length === 0) return false;
  return Object.entries(subset).every(([k, v]) => of?.[k] === v);
}

/** Resolves a port reference (number or container port name) to a container port number. */
export function resolveContainerPort(container: Container, ref: number | string | undefined): number | undefined {
  if (typeof ref === 'number') return container.ports?.some((p) => p.containerPort === ref) ? ref : undefined;
  return container.ports?.find((p) => p.name === ref)?.containerPort;
}

export function checkServerWiring(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const problem = (message: string): void => void problems.push(message);

  const deployment = serverDeployment(objects);
  const namespace = deployment.metadata.namespace;
  const pod = deployment.spec.template.spec;
  const podLabels = deployment.spec.template.metadata?.labels;
  const container = serverContainer(deployment);
  const args = container.args ?? [];
  const grpcPort = resolveContainerPort(container, 'grpc');
  const adminPort = resolveContainerPort(container, 'admin');

  // Deployment: args, ports, probes.
  if (args[0] !== 'serve') problem(`container args must start with 'serve', got ${JSON.stringify(args)}`);
  if (!isSubset(deployment.spec.selector.matchLabels, podLabels)) problem('Deployment selector does not match its pod labels');
  if (grpcPort === undefined || portOf(flagValue(args, '--listen')) !== grpcPort) {
    problem(`--listen (${flagValue(args, '--listen')}) does not match the 'grpc' container port (${grpcPort})`);
  }
  if (adminPort === undefined || portOf(flagValue(args, '--admin-listen')) !== adminPort) {
    problem(`--admin-listen (${flagValue(args, '--admin-listen')}) does not match the 'admin' container port (${adminPort})`);
  }
  const probes: [string, Probe | undefined, string][] = [
    ['livenessProbe', container.livenessProbe, '/healthz'],
    ['readinessProbe', container.readinessProbe, '/readyz'],
    ['startupProbe', container.startupProbe, '/healthz'],
  ];
  for (const [name, probe, path] of probes) {
    if (name !== 'startupProbe' && !probe) problem(`${name} is missing`);
    if (!probe) continue;
    if (probe.httpGet?.path !== path) problem(`${name} path is ${probe.httpGet?.path}, expected ${path}`);
    if (resolveContainerPort(container, probe.httpGet?.port) !== adminPort) problem(`${name} does not probe the admin port`);
  }
  if ((deployment.spec.replicas ?? 1) < 2) problem(`replicas is ${deployment.spec.replicas}, expected at least 2`);
  if (!container.resources?.requests?.cpu || !container.resources.requests.memory) problem('resource requests are missing');
  if (!container.resources?.limits?.memory) problem('a memory limit is missing');

  // Graceful shutdown: the kubelet must wait longer than the server's delay plus drain.
  const delay = flagValue(args, '--shutdown-delay') ?? '0s';
  const drain = flagValue(args, '--shutdown-timeout');
  const grace = pod.terminationGracePeriodSeconds;
  if (!drain || grace === undefined || grace * 1000 <= durationMs(delay) + durationMs(drain)) {
    problem(`terminationGracePeriodSeconds (${grace}) must exceed --shutdown-delay (${delay}) + --shutdown-timeout (${drain})`);
  }

  // Security: non-root, read-only root filesystem, no privilege escalation, no capabilities; /tmp writable.
  const podSecurity = pod.securityContext ?? {};
  if (podSecurity.runAsNonRoot !== true) problem('pod securityContext.runAsNonRoot must be true');
  if (typeof podSecurity.runAsUser !== 'number' || podSecurity.runAsUser === 0) problem('pod securityContext.runAsUser must be a non-zero UID');
  const security = container.securityContext ?? {};
  if (security.readOnlyRootFilesystem !== true) problem('readOnlyRootFilesystem must be true');
  if (security.allowPrivilegeEscalation !== false) problem('allowPrivilegeEscalation must be false');
  if (!security.capabilities?.drop?.includes('ALL')) problem('capabilities must drop ALL');
  const tmpMount = container.volumeMounts?.find((m) => m.mountPath === '/tmp');
  if (!tmpMount || !pod.volumes?.some((v) => v.name === tmpMount.name && v.emptyDir)) problem('/tmp must be an emptyDir');

  // Policies: the --policies directory is the ConfigMap's mount.
  const policiesDir = flagValue(args, '--policies');
  const policiesMount = container.volumeMounts?.find((m) => m.mountPath === policiesDir);
  const policiesVolume = pod.volumes?.find((v) => v.name === policiesMount?.name);
  if (!policiesMount || !policiesVolume?.configMap) problem(`--policies ${policiesDir} is not a mounted ConfigMap`);
  const configMaps = objects.filter((o) => o.kind === 'ConfigMap');
  if (configMaps.length > 0 && !configMaps.some((cm) => cm.metadata.name === policiesVolume?.configMap?.name)) {
    problem(`the policies volume mounts ConfigMap ${policiesVolume?.configMap?.name}, which is not part of the install`);
  }

  // Topology spread selects our pods.
  const spread = pod.topologySpreadConstraints ?? [];
  if (!spread.some((c) => c.topologyKey === 'kubernetes.io/hostname')) problem('no topology spread across nodes');
  for (const constraint of spread) {
    if (!isSubset(constraint.labelSelector?.matchLabels, podLabels)) problem(`topology spread on ${constraint.topologyKey} does not select the pods`);
  }

  // Service: selects the pods, gRPC (h2c) and metrics ports resolve to the container ports.
  const service = findOne(objects, 'Service', SERVER_NAME);
  const serviceSpec = service.spec as { selector?: Record<string, string>; ports?: { name?: string; port: number; targetPort?: number | string; appProtocol?: string }[] };
  if (!isSubset(serviceSpec.selector, podLabels)) problem('Service selector does not match the pod labels');
  if (service.metadata.namespace !== namespace) problem('Service and Deployment are in different namespaces');
  const servicePorts = serviceSpec.ports ?? [];
  for (const port of servicePorts) {
    if (resolveContainerPort(container, port.targetPort ?? port.port) === undefined) problem(`Service port ${port.name} targets no container port`);
  }
  const grpcServicePort = servicePorts.find((p) => resolveContainerPort(container, p.targetPort ?? p.port) === grpcPort);
  if (grpcServicePort?.appProtocol !== 'kubernetes.io/h2c') problem('the Service gRPC port must have appProtocol kubernetes.io/h2c');
  if (!servicePorts.some((p) => resolveContainerPort(container, p.targetPort ?? p.port) === adminPort)) problem('the Service has no metrics (admin) port');

  // Identity: one ServiceAccount, bound to auth-delegator (TokenReview) and to a Role reading Secrets.
  const serviceAccount = pod.serviceAccountName;
  const serviceAccounts = objects.filter((o) => o.kind === 'ServiceAccount');
  if (serviceAccounts.length > 0 && !serviceAccounts.some((sa) => sa.metadata.name === serviceAccount && sa.metadata.namespace === namespace)) {
    problem(`serviceAccountName ${serviceAccount} is not the ServiceAccount of the install`);
  }
  const boundToServer = (binding: K8sObject): boolean =>
    Array.isArray(binding.subjects) &&
    (binding.subjects as Record<string, unknown>[]).some(
      (s) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === namespace,
    );
  const clusterBindings = objects.filter((o) => o.kind === 'ClusterRoleBinding');
  if (!clusterBindings.some((b) => isRecord(b.roleRef) && b.roleRef.name === 'system:auth-delegator' && boundToServer(b))) {
    problem('no ClusterRoleBinding of system:auth-delegator to the server ServiceAccount');
  }
  const secretReaders = objects.filter(
    (role) =>
      role.kind === 'Role' &&
      role.metadata.namespace === namespace &&
      Array.isArray(role.rules) &&
      (role.rules as { resources?: string[]; verbs?: string[] }[]).some(
        (rule) => rule.resources?.includes('secrets') && ['get', 'list', 'watch'].every((verb) => rule.verbs?.includes(verb)),
      ),
  );
  const roleBindings = objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.namespace === namespace);
  if (!roleBindings.some((b) => isRecord(b.roleRef) && secretReaders.some((r) => r.metadata.name === (b.roleRef as { name: string }).name) && boundToServer(b))) {
    problem('no RoleBinding of a Secret-reading Role to the server ServiceAccount');
  }

  // Disruption budget keeps one pod up and selects ours.
  const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget');
  if (pdb) {
    const spec = pdb.spec as { minAvailable?: number; selector?: { matchLabels?: Record<string, string> } };
    if (!isSubset(spec.selector?.matchLabels, podLabels)) problem('PodDisruptionBudget does not select the pods');
    if (typeof spec.minAvailable !== 'number' || spec.minAvailable < 1 || spec.minAvailable >= (deployment.spec.replicas ?? 1)) {
      problem(`PodDisruptionBudget minAvailable ${spec.minAvailable} must be at least 1 and below replicas`);
    }
  }

  // NetworkPolicy: the gRPC port only from selected sources; never from everywhere.
  const networkPolicy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === SERVER_NAME);
  if (networkPolicy) {
    const spec = networkPolicy.spec as {
      podSelector?: { matchLabels?: Record<string, string> };
      ingress?: { from?: unknown[]; ports?: { port?: number | string }[] }[];
    };
    if (!isSubset(spec.podSelector?.matchLabels, podLabels)) problem('NetworkPolicy does not select the pods');
    const opensGrpc = (rule: { ports?: { port?: number | string }[] }): boolean =>
      !rule.ports || rule.ports.some((p) => p.port === undefined || resolveContainerPort(container, p.port) === grpcPort);
    const rules = spec.ingress ?? [];
    if (rules.some((rule) => opensGrpc(rule) && (!rule.from || rule.from.length === 0))) problem('NetworkPolicy opens the gRPC port to every source');
    if (!rules.some((rule) => opensGrpc(rule) && rule.from && rule.from.length > 0)) problem('NetworkPolicy admits nobody to the gRPC port');
  }
  return problems;
}

/** The namespaces whose pods the server NetworkPolicy admits to the gRPC port. */
export function namespacesAdmittedToGrpc(objects: K8sObject[]): string[] {
  const policy = findOne(objects, 'NetworkPolicy', SERVER_NAME);
  const rules = (policy.spec as { ingress?: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[] }).ingress ?? [];
  return rules.flatMap((rule) => (rule.from ?? []).map((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'])).filter((ns): ns is string => typeof ns === 'string');
}
