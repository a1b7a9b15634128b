// Where the Kubernetes API is and how to authenticate to it: the in-cluster service account, or a kubeconfig
// file (its current context). Covers what an egress gateway's deployment uses: bearer token (inline or a
// file, re-read when it rotates), client certificate, basic auth, a CA (file or inline), skip-verify and the
// TLS server name. A kubeconfig user that needs more (exec or auth-provider plugins, impersonation, a proxy)
// is reported as such, and the caller falls back to @kubernetes/client-node for it.
// Field names: kubeconfig v1 (k8s.io/client-go/tools/clientcmd/api/v1). Every error message is secret-free:
// it names fields and files, never their contents.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { KubeApiError } from './kube-api.js';

/** Where a pod's service-account credentials are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The `Authorization` header value for each request (undefined: none). Holds the secret out of sight of loggers. */
export interface KubeAuthorization {
  /** What kind of credential, for logs: none, token, tokenFile, basic. */
  readonly kind: 'none' | 'token' | 'tokenFile' | 'basic';
  header(): string | undefined | Promise<string | undefined>;
}

export interface KubeConnection {
  /** API server URL (may carry a path prefix). */
  readonly server: string;
  /** TLS toward an https server: one context (CA, client certificate) shared by every connection. */
  readonly tls?: {
    readonly secureContext: SecureContext;
    readonly rejectUnauthorized: boolean;
    /** tls-server-name: the name the server certificate must carry instead of the URL's host. */
    readonly serverName?: string;
  };
  readonly authorization: KubeAuthorization;
}

export type KubeconfigOutcome =
  | { readonly kind: 'native'; readonly connection: KubeConnection }
  /** The current context needs something only @kubernetes/client-node implements; `reason` names the field. */
  | { readonly kind: 'client-node'; readonly reason: string };

/** kubeconfig user fields we leave to @kubernetes/client-node. */
const USER_FIELDS_FOR_CLIENT_NODE = ['exec', 'auth-provider', 'as', 'as-uid', 'as-groups', 'as-user-extra'] as const;
/** kubeconfig cluster fields we leave to @kubernetes/client-node. */
const CLUSTER_FIELDS_FOR_CLIENT_NODE = ['proxy-url'] as const;

/** The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT, the mounted token (re-read on rotation) and CA. */
export async function loadInClusterConfig(
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir: string = SERVICE_ACCOUNT_DIR,
): Promise<KubeConnection> {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) throw new KubeApiError('in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT');
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const ca = await readFileFor(path.join(serviceAccountDir, 'ca.crt'), 'the service-account CA');
  const authorization = new TokenFileAuthorization(path.join(serviceAccountDir, 'token'));
  await authorization.header();
  return { server, tls: { secureContext: secureContextOf({ ca }, 'the service-account CA'), rejectUnauthorized: true }, authorization };
}

/** The kubeconfig file's current context, or which feature needs the client-node fallback. */
export async function loadKubeconfigFile(file: string): Promise<KubeconfigOutcome> {
  const text = await readFileFor(file, 'the kubeconfig');
  let doc: unknown;
  try {
    doc = parseYaml(text.toString('utf8'));
  } catch (err) {
    // The parser's message quotes the offending line, which may hold a token: give only its position.
    const line = err instanceof YAMLParseError ? err.linePos?.[0]?.line : undefined;
    throw new KubeApiError(`the kubeconfig is not valid YAML${line ? ` (line ${line})` : ''}`);
  }
  const config = record(doc, 'the kubeconfig');
  const contextName = optionalString(config['current-context'], 'current-context');
  if (!contextName) throw new KubeApiError('the kubeconfig has no current-context');
  const context = record(named(config['contexts'], 'contexts', contextName, 'context'), `context "${contextName}"`);
  const clusterName = optionalString(context['cluster'], `context "${contextName}".cluster`);
  if (!clusterName) throw new KubeApiError(`context "${contextName}" names no cluster`);
  const cluster = record(named(config['clusters'], 'clusters', clusterName, 'cluster'), `cluster "${clusterName}"`);
  const userName = optionalString(context['user'], `context "${contextName}".user`);
  const user = userName ? record(named(config['users'], 'users', userName, 'user'), `user "${userName}"`) : {};

  for (const field of USER_FIELDS_FOR_CLIENT_NODE) {
    if (present(user[field])) return { kind: 'client-node', reason: `user "${userName}" uses ${field}` };
  }
  for (const field of CLUSTER_FIELDS_FOR_CLIENT_NODE) {
    if (present(cluster[field])) return { kind: 'client-node', reason: `cluster "${clusterName}" uses ${field}` };
  }

  // Relative paths in a kubeconfig are relative to the file's own directory.
  const dir = path.dirname(path.resolve(file));
  const clusterWhere = `cluster "${clusterName}"`;
  const userWhere = `user "${userName ?? ''}"`;
  const server = serverUrl(optionalString(cluster['server'], `${clusterWhere}.server`), clusterWhere);

  let tls: KubeConnection['tls'];
  if (server.startsWith('https:')) {
    const insecure = optionalBool(cluster['insecure-skip-tls-verify'], `${clusterWhere}.insecure-skip-tls-verify`);
    // Skipping verification makes a CA meaningless (client-go refuses the pair): the CA is ignored then.
    const ca = insecure ? undefined : await material(cluster, 'certificate-authority', dir, clusterWhere);
    const cert = await material(user, 'client-certificate', dir, userWhere);
    const key = await material(user, 'client-key', dir, userWhere);
    if (!cert !== !key) throw new KubeApiError(`${userWhere} has a client certificate without its key, or a key without its certificate`);
    const serverName = optionalString(cluster['tls-server-name'], `${clusterWhere}.tls-server-name`) || undefined;
    tls = {
      secureContext: secureContextOf({ ca, cert, key }, `the TLS material of ${clusterWhere} / ${userWhere}`),
      rejectUnauthorized: !insecure,
      ...(serverName ? { serverName } : {}),
    };
  }
  return { kind: 'native', connection: { server, ...(tls ? { tls } : {}), authorization: await authorizationOf(user, dir, userWhere) } };
}

/**
 * token, else tokenFile (the kubeconfig reference: "If both Token and TokenFile are present, Token takes
 * precedence"), else username/password, else nothing (a client certificate alone, or an open proxy).
 */
async function authorizationOf(user: Record<string, unknown>, dir: string, owner: string): Promise<KubeAuthorization> {
  const token = optionalString(user['token'], `${owner}.token`);
  if (token) return new StaticAuthorization('token', `Bearer ${token.trim()}`);
  const tokenFile = optionalString(user['tokenFile'], `${owner}.tokenFile`);
  if (tokenFile) {
    const auth = new TokenFileAuthorization(path.resolve(dir, tokenFile));
    await auth.header();
    return auth;
  }
  const username = optionalString(user['username'], `${owner}.username`);
  const password = optionalString(user['password'], `${owner}.password`);
  if (username || password) {
    return new StaticAuthorization('basic', `Basic ${Buffer.from(`${username ?? ''}:${password ?? ''}`).toString('base64')}`);
  }
  return new StaticAuthorization('none', undefined);
}

class StaticAuthorization implements KubeAuthorization {
  readonly #header: string | undefined;

  constructor(
    readonly kind: KubeAuthorization['kind'],
    header: string | undefined,
  ) {
    this.#header = header;
  }

  header(): string | undefined {
    return this.#header;
  }
}

/**
 * A bearer token in a file that is replaced while we run (the kubelet rotates a projected service-account
 * token long before it expires, by swapping a symlink). Each request stats the file (concurrent requests share
 * one stat) and re-reads it when its inode, size or mtime changed, so a rotated token is used at once. A file
 * that disappears or turns empty keeps the last good token: the old one stays valid for a while.
 */
export class TokenFileAuthorization implements KubeAuthorization {
  readonly kind = 'tokenFile';
  #header: string | undefined;
  #stamp = '';
  #pending: Promise<string> | undefined;

  constructor(readonly file: string) {}

  header(): Promise<string> {
    this.#pending ??= this.refresh().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  private async refresh(): Promise<string> {
    try {
      const st = await fsp.stat(this.file);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (stamp === this.#stamp && this.#header) return this.#header;
      const token = (await fsp.readFile(this.file, 'utf8')).trim();
      if (!token) throw new KubeApiError(`the token file ${this.file} is empty`);
      this.#header = `Bearer ${token}`;
      this.#stamp = stamp;
      return this.#header;
    } catch (err) {
      if (this.#header) return this.#header;
      throw err instanceof KubeApiError ? err : new KubeApiError(`cannot read the token file ${this.file} (${codeOf(err)})`);
    }
  }
}

/** `<field>-data` (base64 PEM, wins) or `<field>` (a path, relative to the kubeconfig's directory). */
async function material(owner: Record<string, unknown>, field: string, dir: string, where: string): Promise<Buffer | undefined> {
  const data = optionalString(owner[`${field}-data`], `${where}.${field}-data`);
  if (data) return Buffer.from(data, 'base64');
  const file = optionalString(owner[field], `${where}.${field}`);
  return file ? readFileFor(path.resolve(dir, file), `${where}.${field}`) : undefined;
}

function secureContextOf(material: { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined }, what: string): SecureContext {
  try {
    return createSecureContext({
      ...(material.ca ? { ca: material.ca } : {}),
      ...(material.cert ? { cert: material.cert } : {}),
      ...(material.key ? { key: material.key } : {}),
    });
  } catch (err) {
    // OpenSSL's messages name the failing routine, not the data; still, report only the code.
    throw new KubeApiError(`${what} is not usable (${codeOf(err)})`);
  }
}

/** client-go takes a server without a scheme as https. */
function serverUrl(server: string | undefined, where: string): string {
  if (!server) throw new KubeApiError(`${where} has no server`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(server) ? server : `https://${server}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KubeApiError(`${where}.server is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new KubeApiError(`${where}.server must be an https or http URL`);
  if (url.username || url.password) throw new KubeApiError(`${where}.server must not carry credentials`);
  return withScheme.replace(/\/+$/, '');
}

async function readFileFor(file: string, what: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (err) {
    throw new KubeApiError(`cannot read ${what} at ${file} (${codeOf(err)})`);
  }
}

/** The entry called `name` in a kubeconfig list (`clusters`, `users`, `contexts`), its `field` object. */
function named(list: unknown, listName: string, name: string, field: string): unknown {
  if (list !== undefined && list !== null && !Array.isArray(list)) throw new KubeApiError(`the kubeconfig's ${listName} is not a list`);
  const entry = (list ?? []).find((e: unknown) => (e as { name?: unknown } | null)?.name === name) as Record<string, unknown> | undefined;
  if (!entry) throw new KubeApiError(`the kubeconfig has no ${listName.replace(/s$/, '')} "${name}"`);
  return entry[field] ?? {};
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new KubeApiError(`${what} is not a mapping`);
  return value as Record<string, unknown>;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new KubeApiError(`${what} is not a string`);
  return value;
}

function optionalBool(value: unknown, what: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new KubeApiError(`${what} is not true or false`);
  return value;
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '' && !(Array.isArray(value) && value.length === 0);
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,60}$/.test(code) ? code : 'error';
}
