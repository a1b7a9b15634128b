// The load scenarios: each is policy files + the backends they need + the request h2load repeats + what a
// correct answer looks like. A scenario whose policies do not load in this build is reported as skipped.
import fs from 'node:fs';
import path from 'node:path';
import type { CheckRequestInput, CheckResult } from '../src/cli/check-client.js';
import { apiKeyFor, type Backends } from './lib/backends.js';

export const SEED_POLICY_DIR = path.resolve(import.meta.dirname, '../../shared/seeds/policies');

export function seed(name: string): string {
  return fs.readFileSync(path.join(SEED_POLICY_DIR, name), 'utf8');
}

/** The ServiceAccount every warm scenario's requests come from (namespace ai-workloads). */
export const BENCH_SERVICE_ACCOUNT = 'chat-frontend';
export const OPENAI_HOST = 'api.openai.com';

export interface ScenarioEnv {
  readonly backends: Backends;
  /** Token of BENCH_SERVICE_ACCOUNT, minted once per harness run. */
  readonly token: string;
}

export interface Scenario {
  /** Short id for --only. */
  readonly id: string;
  /** Row label in the table. */
  readonly title: string;
  /** `serve --workers N`; default 1. */
  readonly workers?: number;
  readonly needsRedis?: boolean;
  /** Policy files by name. */
  files(env: ScenarioEnv): Record<string, string>;
  /** Extra `serve` flags (backends). */
  serveFlags(env: ScenarioEnv & { redisUrl?: string }): string[];
  request(env: ScenarioEnv): CheckRequestInput;
  /** Why a sample answer is wrong, or undefined when it is the expected allow. */
  verify(result: CheckResult, env: ScenarioEnv): string | undefined;
}

function expectAllowed(r: CheckResult): string | undefined {
  if (!r.allowed) return `expected allow, got ${r.httpStatus}: ${r.message || r.body}`;
  return undefined;
}

function expectInjectedKey(r: CheckResult): string | undefined {
  const problem = expectAllowed(r);
  if (problem) return problem;
  const auth = r.headers.find((h) => h.key.toLowerCase() === 'authorization');
  if (auth?.value !== `Bearer ${apiKeyFor(BENCH_SERVICE_ACCOUNT)}`) return 'allowed, but the Vault API key was not injected';
  if (auth.appendAction !== 'OVERWRITE_IF_EXISTS_OR_ADD') return `authorization header injected with ${auth.appendAction}`;
  return undefined;
}

/** What a workload's call to the OpenAI API looks like to ext_authz. */
export function workloadRequestFor(token: string): CheckRequestInput {
  return {
    host: OPENAI_HOST,
    method: 'POST',
    path: '/v1/chat/completions',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'x-request-id': '3f1c9a52-bench-4b7e-9d2a-6c1e8f0a7b13',
      'user-agent': 'python-httpx/0.27.0',
    },
  };
}

const workloadRequest = (env: ScenarioEnv): CheckRequestInput => workloadRequestFor(env.token);

export type IdentityKind = 'tokenreview' | 'jwt';

const AUTHENTICATION: Record<IdentityKind, string> = {
  tokenreview: `    workload-identity:
      kubernetesTokenReview:
        audiences: ["https://kubernetes.default.svc.cluster.local"]`,
  // ServiceAccount tokens verified locally against the API server's JWKS: no API call per new token.
  jwt: `    workload-identity:
      jwt:
        kubernetes: true
        audiences: ["https://kubernetes.default.svc.cluster.local"]`,
};

/**
 * Credential injection with warm caches: the seed's flow written with the native `vault` metadata source,
 * which caches the Vault token per identity and the secret for its TTL (the seed's `http` sources call
 * Vault twice per request by design).
 */
export function credentialInjectionPolicy(vaultUrl: string, identity: IdentityKind = 'tokenreview'): string {
  return `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: openai-credential-injection
  namespace: gateway-system
spec:
  hosts: [${OPENAI_HOST}]
  authentication:
${AUTHENTICATION[identity]}
  metadata:
    vault_secret:
      vault:
        addr: ${vaultUrl}
        auth:
          kubernetes:
            role: egress-workload
        path: '"egress/" + auth.identity.namespace + "/" + auth.identity.serviceAccount'
  authorization:
    allowed-namespaces: auth.identity.username.startsWith("system:serviceaccount:ai-workloads:")
    vault_credential_check: has(auth.metadata.vault_secret.data.api_key)
  response:
    success:
      headers:
        authorization: '"Bearer " + auth.metadata.vault_secret.data.api_key'
`;
}

/** The seed's RateLimitPolicy (100 per minute per ServiceAccount) with a limit no benchmark reaches. */
function neverDenyingRateLimit(): string {
  const text = seed('openai-rate-limit.yaml');
  const raised = text.replace(/limit: 100\b/, 'limit: 1000000000');
  if (raised === text) throw new Error('openai-rate-limit.yaml: expected "limit: 100" to raise');
  return raised;
}

const kubeFlags = (env: ScenarioEnv) => ['--kubeconfig', env.backends.kubeconfigPath];

const credentialInjection = (extra: Record<string, string>) => (env: ScenarioEnv) => ({
  'openai-external-httproute.yaml': seed('openai-external-httproute.yaml'),
  'openai-credential-injection.yaml': credentialInjectionPolicy(env.backends.vault.url),
  ...extra,
});

export const SCENARIOS: readonly Scenario[] = [
  {
    id: 'minimal',
    title: 'Minimal EgressPolicy (host match, no stages)',
    files: () => ({
      'minimal.yaml': `apiVersion: egress-authz.dev/v1alpha1
kind: EgressPolicy
metadata:
  name: allow-demo
spec:
  hosts: [demo.example.com]
`,
    }),
    serveFlags: () => [],
    request: () => ({
      host: 'demo.example.com',
      path: '/get',
      headers: { 'x-request-id': '3f1c9a52-bench-4b7e-9d2a-6c1e8f0a7b13', 'user-agent': 'curl/8.5.0' },
    }),
    verify: expectAllowed,
  },
  {
    id: 'kyverno',
    title: 'Kyverno header policy (seed)',
    files: () => ({ 'kyverno-demo-policy.yaml': seed('kyverno-demo-policy.yaml') }),
    serveFlags: () => [],
    request: () => ({
      host: 'demo.example.com',
      path: '/get',
      headers: { 'x-force-authorized': 'true', 'x-request-id': '3f1c9a52-bench-4b7e-9d2a-6c1e8f0a7b13', 'user-agent': 'curl/8.5.0' },
    }),
    verify: expectAllowed,
  },
  {
    id: 'tokenreview',
    title: 'TokenReview access control (seed), warm',
    files: () => ({
      'openai-external-httproute.yaml': seed('openai-external-httproute.yaml'),
      'openai-access-control.yaml': seed('openai-access-control.yaml'),
    }),
    serveFlags: kubeFlags,
    request: workloadRequest,
    verify: expectAllowed,
  },
  {
    id: 'inject',
    title: 'Credential injection (TokenReview + Vault), warm',
    files: credentialInjection({}),
    serveFlags: kubeFlags,
    request: workloadRequest,
    verify: expectInjectedKey,
  },
  {
    id: 'inject-memrl',
    title: '+ in-memory rate limit',
    files: credentialInjection({ 'openai-rate-limit.yaml': neverDenyingRateLimit() }),
    serveFlags: kubeFlags,
    request: workloadRequest,
    verify: expectInjectedKey,
  },
  {
    id: 'inject-redisrl',
    title: '+ Redis rate limit',
    needsRedis: true,
    files: credentialInjection({ 'openai-rate-limit.yaml': neverDenyingRateLimit() }),
    serveFlags: (env) => [...kubeFlags(env), '--redis-url', env.redisUrl ?? ''],
    request: workloadRequest,
    verify: expectInjectedKey,
  },
  {
    id: 'inject-2w',
    title: 'Credential injection, 2 workers',
    workers: 2,
    files: credentialInjection({}),
    serveFlags: kubeFlags,
    request: workloadRequest,
    verify: expectInjectedKey,
  },
];

