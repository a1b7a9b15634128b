// `apiKey`: the credential must equal one of a set of keys, from a file or from Kubernetes Secrets selected by
// label (Kuadrant style: the key in the Secret's `api_key` data field). Keys are held only as SHA-256 digests
// and compared in constant time (timingSafeEqual over digests, every entry checked). The identity names the
// key's owner: name, namespace, labels, annotations (never the key).
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { CheckContext } from '../pipeline/context.js';
import type { Services } from '../pipeline/services.js';
import type { YNode } from '../policy/yaml-node.js';
import { warnBackendThrottled } from './backend-log.js';
import { challengeFor } from './credentials.js';
import { waitWithinDeadline } from '../pipeline/deadline.js';
import { deepFreeze, resolveBesidePolicy } from './identity-object.js';
import { kubeApiFor } from './kube-client.js';
import type { IdentityMethodFactory, IdentityOutcome } from './method.js';

/** How often Secrets are listed again (new, rotated and deleted keys take effect within this). */
export const API_KEY_SECRET_REFRESH_MS = 30_000;
/** The Secret data field holding the key (Authorino's convention). */
export const API_KEY_SECRET_FIELD = 'api_key';
const LIST_TIMEOUT_MS = 5_000;

interface KeyEntry {
  readonly digest: Buffer;
  readonly identity: Readonly<Record<string, unknown>>;
  readonly label: string;
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time lookup: every entry is compared, so timing says nothing about which one (if any) matched. */
export function findKey(entries: readonly KeyEntry[], presented: string): KeyEntry | undefined {
  const digest = sha256(presented);
  let found: KeyEntry | undefined;
  for (const e of entries) {
    if (timingSafeEqual(digest, e.digest) && !found) found = e;
  }
  return found;
}

function ownerIdentity(
  source: 'file' | 'secret',
  name: string,
  namespace: string,
  labels: Record<string, string>,
  annotations: Record<string, string>,
): Readonly<Record<string, unknown>> {
  return deepFreeze({
    source,
    name,
    namespace,
    labels,
    annotations,
    // The Secret's metadata as Kuadrant exposes it (auth.identity.metadata.labels ...).
    metadata: { name, namespace, labels, annotations },
    username: name,
  });
}

export const apiKeyMethod: IdentityMethodFactory = ({ config, credentials, sc }) => {
  config.checkKeys(['file', 'selector', 'namespace', 'allNamespaces'], 'apiKey');
  const file = config.get('file');
  const selector = config.get('selector');
  if (!!file === !!selector) {
    config.error('apiKey: give exactly one of file (a key file) or selector (Kubernetes Secrets by label)');
    return undefined;
  }
  let lookup: (ctx: CheckContext) => Promise<readonly KeyEntry[] | string>;
  if (file) {
    for (const k of ['namespace', 'allNamespaces']) config.get(k)?.error(`apiKey.${k} applies to selector, not file`);
    const entries = readKeyFile(file);
    if (!entries) return undefined;
    lookup = async () => entries;
  } else {
    const labelSelector = readLabelSelector(selector!);
    const allNamespaces = config.get('allNamespaces')?.bool('allNamespaces: true or false') ?? false;
    const policyNamespace = sc.policy.includes('/') ? sc.policy.slice(0, sc.policy.indexOf('/')) : undefined;
    const namespace = config.get('namespace')?.string('namespace') ?? policyNamespace;
    if (labelSelector === undefined) return undefined;
    if (!allNamespaces && !namespace) {
      config.error('apiKey.selector: give namespace, or allNamespaces: true (the policy has no namespace)');
      return undefined;
    }
    const set = secretKeySetFor(sc.services, allNamespaces ? undefined : namespace, labelSelector);
    lookup = (ctx) => set.entries(ctx);
  }

  return {
    kind: 'apiKey',
    challenge: challengeFor(credentials, 'APIKEY'),
    async authenticate(ctx): Promise<IdentityOutcome> {
      const key = credentials.extract(ctx.view);
      if (!key) return { kind: 'missing' };
      const entries = await lookup(ctx);
      if (typeof entries === 'string') return { kind: 'unavailable', reason: entries };
      const match = findKey(entries, key);
      if (!match) return { kind: 'invalid', reason: 'unknown API key' };
      return { kind: 'ok', identity: match.identity as Record<string, unknown>, label: match.label, credential: key };
    },
  };
};

/** A YAML/JSON list (or {keys: [...]}) of {key | sha256, name, labels}; errors name the entry, never the key. */
function readKeyFile(node: YNode): KeyEntry[] | undefined {
  const given = node.string('file: a path to a key file');
  if (!given) return undefined;
  const path = resolveBesidePolicy(node, given);
  let parsed: unknown;
  try {
    parsed = parseYaml(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    node.error(`apiKey.file ${given}: ${code ? `cannot read (${code})` : 'not valid YAML or JSON'}`);
    return undefined;
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(list)) {
    node.error(`apiKey.file ${given}: expected a list of {key or sha256, name, labels}`);
    return undefined;
  }
  const entries: KeyEntry[] = [];
  list.forEach((raw: unknown, i) => {
    const item = raw as { key?: unknown; sha256?: unknown; name?: unknown; labels?: unknown } | null;
    const where = `apiKey.file ${given}: entry ${i + 1}`;
    if (!item || typeof item !== 'object') return node.error(`${where}: expected a mapping`);
    if (typeof item.name !== 'string' || !item.name) return node.error(`${where}: name is required`);
    const labels = item.labels ?? {};
    if (typeof labels !== 'object' || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string')) {
      return node.error(`${where} (${item.name}): labels must map strings to strings`);
    }
    let digest: Buffer;
    if (typeof item.key === 'string' && item.key && item.sha256 === undefined) {
      digest = sha256(item.key);
    } else if (typeof item.sha256 === 'string' && /^[0-9a-fA-F]{64}$/.test(item.sha256) && item.key === undefined) {
      digest = Buffer.from(item.sha256, 'hex');
    } else {
      return node.error(`${where} (${item.name}): give exactly one of key or sha256 (64 hex digits)`);
    }
    entries.push({ digest, identity: ownerIdentity('file', item.name, '', labels as Record<string, string>, {}), label: item.name });
  });
  return entries;
}

/** A Kubernetes label selector (matchLabels / matchExpressions) as the API's labelSelector query string. */
function readLabelSelector(node: YNode): string | undefined {
  node.checkKeys(['matchLabels', 'matchExpressions'], 'apiKey.selector');
  const terms: string[] = [];
  for (const [k, v] of node.get('matchLabels')?.entries('matchLabels: a map of labels') ?? []) {
    const value = v.string('a label value');
    if (value !== undefined) terms.push(`${k}=${value}`);
  }
  for (const expr of node.get('matchExpressions')?.items('matchExpressions: a list') ?? []) {
    expr.checkKeys(['key', 'operator', 'values'], 'matchExpressions');
    const key = expr.get('key')?.string('key');
    const op = expr.get('operator')?.string('operator');
    const values = expr.get('values')?.stringList('values') ?? [];
    if (!key) continue;
    if (op === 'In' || op === 'NotIn') {
      if (values.length === 0) expr.error(`matchExpressions: ${op} needs values`);
      terms.push(`${key} ${op === 'In' ? 'in' : 'notin'} (${values.join(',')})`);
    } else if (op === 'Exists') terms.push(key);
    else if (op === 'DoesNotExist') terms.push(`!${key}`);
    else expr.error(`matchExpressions.operator: In, NotIn, Exists or DoesNotExist`);
  }
  if (terms.length === 0) {
    node.error('apiKey.selector selects every Secret: give matchLabels or matchExpressions');
    return undefined;
  }
  return terms.join(',');
}

interface SecretList {
  items?: Array<{
    metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
    data?: Record<string, string>;
  }>;
}

/** API keys from Secrets, listed right after the policy loads and again every API_KEY_SECRET_REFRESH_MS. */
class SecretKeySet {
  private current: KeyEntry[] | undefined;
  private lastError: string | undefined;
  private inflight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly services: Services,
    private readonly namespace: string | undefined,
    private readonly labelSelector: string,
  ) {}

  private get path(): string {
    const q = `labelSelector=${encodeURIComponent(this.labelSelector)}`;
    return this.namespace ? `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets?${q}` : `/api/v1/secrets?${q}`;
  }

  refresh(): Promise<void> {
    this.inflight ??= this.listOnce().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async listOnce(): Promise<void> {
    try {
      const api = await kubeApiFor(this.services).ready();
      const list = (await this.services.metrics.timeBackend('kube-secrets', () =>
        api.getJson(this.path, AbortSignal.timeout(LIST_TIMEOUT_MS)),
      )) as SecretList;
      const entries: KeyEntry[] = [];
      for (const s of list.items ?? []) {
        const encoded = s.data?.[API_KEY_SECRET_FIELD];
        const md = s.metadata ?? {};
        if (!encoded || !md.name) continue;
        const key = Buffer.from(encoded, 'base64').toString('utf8');
        if (!key) continue;
        const namespace = md.namespace ?? this.namespace ?? '';
        entries.push({
          digest: sha256(key),
          identity: ownerIdentity('secret', md.name, namespace, { ...md.labels }, { ...md.annotations }),
          label: `${namespace}/${md.name}`,
        });
      }
      this.current = entries;
      this.lastError = undefined;
    } catch (err) {
      // Keep the last good keys when a refresh fails.
      this.lastError = (err as Error).message;
      warnBackendThrottled(this.services.logger, 'kube-secrets', `listing API key Secrets failed: ${this.lastError}`);
    }
  }

  startTimer(): void {
    this.timer ??= setInterval(() => void this.refresh(), API_KEY_SECRET_REFRESH_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The keys, or the reason there are none yet (→ 503). */
  async entries(ctx: CheckContext): Promise<readonly KeyEntry[] | string> {
    if (this.current) return this.current;
    const waited = await waitWithinDeadline(this.refresh(), ctx);
    if (this.current) return this.current;
    return waited.done ? `API key Secrets unavailable: ${this.lastError ?? 'not listed yet'}` : 'API key Secrets not listed within the deadline';
  }
}

function secretKeySetFor(services: Services, namespace: string | undefined, labelSelector: string): SecretKeySet {
  return services.singleton(
    `identity:apikey-secrets:${namespace ?? '*'}:${labelSelector}`,
    () => {
      const set = new SecretKeySet(services, namespace, labelSelector);
      services.warmUp(async () => {
        await set.refresh();
        if (!services.isClosed) set.startTimer();
      });
      return set;
    },
    (set) => set.close(),
  );
}
