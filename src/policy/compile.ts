// Documents → one PolicySet: compiles every document, resolves Kuadrant targets, composes documents that
// select the same requests, and rejects conflicting sets. Composition rules: docs/policy-reference.md.
import { compileAuthentication } from '../identity/index.js';
import { compileMetadata } from '../metadata/index.js';
import { compileAuthorization } from '../pipeline/authorization.js';
import { compileWhen, type FailurePolicy, type SectionContext } from '../pipeline/section.js';
import type { Services } from '../pipeline/services.js';
import { compileVariables } from '../pipeline/variables.js';
import { compileRateLimits } from '../ratelimit/index.js';
import { compileTokenBudgets } from '../budget/index.js';
import { AUTH_RULE_KEYS, targetHostnames } from './compat/kuadrant.js';
import { compileKyverno } from './compat/kyverno.js';
import { Diagnostics, PolicyLoadError } from './diagnostics.js';
import type { PolicyDocument } from './document.js';
import { CompiledPolicy, type PolicyParts } from './policy.js';
import { compileResponse } from './response.js';
import { PolicySet, normalizeHostPattern } from './policy-set.js';
import type { YNode } from './yaml-node.js';

const NATIVE_SPEC_KEYS = [
  'hosts',
  'when',
  'failurePolicy',
  'variables',
  'authentication',
  'metadata',
  'authorization',
  'rateLimits',
  'tokenBudgets',
  'response',
];

interface Contribution {
  doc: PolicyDocument;
  parts: PolicyParts;
  hosts: string[];
  global: boolean;
  providesAuth: boolean;
  providesRateLimit: boolean;
  /** Has `tokenBudgets`: at most one document per host may (their grants would overwrite each other). */
  providesTokenBudgets?: boolean;
}

function displayName(doc: PolicyDocument): string {
  return doc.namespace ? `${doc.namespace}/${doc.name}` : doc.name;
}

function readFailurePolicy(spec: YNode): FailurePolicy {
  const n = spec.get('failurePolicy');
  const v = n?.string('Fail or Ignore') ?? 'Fail';
  if (v !== 'Fail' && v !== 'Ignore') n?.error('failurePolicy must be Fail or Ignore');
  return v === 'Ignore' ? 'Ignore' : 'Fail';
}

function compileRules(doc: PolicyDocument, rules: YNode, spec: YNode, sc: SectionContext): PolicyParts {
  const authn = rules.get('authentication');
  const md = rules.get('metadata');
  const authz = rules.get('authorization');
  const rl = spec.get('rateLimits') ?? (doc.kind === 'RateLimitPolicy' ? spec.get('limits') : undefined);
  if (rules.get('callbacks')) rules.get('callbacks')!.error('callbacks are not supported');
  return {
    name: sc.policy,
    kind: doc.kind,
    pos: doc.root.pos,
    failurePolicy: sc.failurePolicy,
    when: compileWhen(spec.get('when'), 'when', sc),
    variables: compileVariables(spec.get('variables'), sc),
    identity: authn ? compileAuthentication(authn, sc) : undefined,
    metadata: md ? compileMetadata(md, sc) : undefined,
    authorization: authz ? compileAuthorization(authz, sc) : undefined,
    rateLimit: rl ? compileRateLimits(rl, sc) : undefined,
    budget: spec.get('tokenBudgets') ? compileTokenBudgets(spec.get('tokenBudgets')!, sc) : undefined,
    response: compileResponse(rules.get('response'), sc),
  };
}

function compileDocument(
  doc: PolicyDocument,
  routes: readonly PolicyDocument[],
  diags: Diagnostics,
  services: Services,
): Contribution | undefined {
  const spec = doc.spec;
  const policy = displayName(doc);
  const base = { diags, services, policy, scope: `${doc.kind}/${policy}` };
  switch (doc.kind) {
    case 'EgressPolicy': {
      spec.checkKeys(NATIVE_SPEC_KEYS, 'EgressPolicy.spec');
      const sc = { ...base, failurePolicy: readFailurePolicy(spec) };
      const hosts = spec.get('hosts')?.stringList('hosts: a list of host names') ?? [];
      const parts = compileRules(doc, spec, spec, sc);
      return {
        doc,
        parts,
        hosts,
        global: false,
        providesAuth: !!(spec.get('authentication') || spec.get('authorization') || spec.get('metadata') || spec.get('response')),
        providesRateLimit: !!spec.get('rateLimits'),
        providesTokenBudgets: !!spec.get('tokenBudgets'),
      };
    }
    case 'AuthPolicy': {
      spec.checkKeys(['targetRef', 'rules', 'when', 'defaults', 'overrides'], 'AuthPolicy.spec');
      const rules = spec.get('defaults')?.get('rules') ?? spec.get('overrides')?.get('rules') ?? spec.get('rules');
      if (!rules) {
        spec.error('AuthPolicy.spec.rules is required');
        return undefined;
      }
      rules.checkKeys(AUTH_RULE_KEYS, 'AuthPolicy.spec.rules');
      const hosts = targetHostnames(doc, routes) ?? [];
      const sc = { ...base, failurePolicy: 'Fail' as const };
      return { doc, parts: compileRules(doc, rules, spec, sc), hosts, global: false, providesAuth: true, providesRateLimit: false };
    }
    case 'RateLimitPolicy': {
      spec.checkKeys(['targetRef', 'limits', 'when', 'defaults', 'overrides'], 'RateLimitPolicy.spec');
      const limitsHolder = spec.get('defaults') ?? spec.get('overrides') ?? spec;
      const hosts = targetHostnames(doc, routes) ?? [];
      const sc = { ...base, failurePolicy: 'Fail' as const };
      const parts = compileRules(doc, limitsHolder, limitsHolder === spec ? spec : limitsHolder, sc);
      return { doc, parts, hosts, global: false, providesAuth: false, providesRateLimit: true };
    }
    case 'KyvernoAuthorizationPolicy':
    case 'KyvernoValidatingPolicy': {
      const { parts } = compileKyverno(doc, { ...base, failurePolicy: 'Fail' });
      // Kyverno policies apply to every request (cluster-wide); our annotation may scope them to hosts.
      const scoped = doc.annotations['egress-authz.dev/hosts'];
      const hosts = scoped ? scoped.split(',').map((h) => h.trim()).filter(Boolean) : [];
      return { doc, parts, hosts, global: hosts.length === 0, providesAuth: true, providesRateLimit: false };
    }
    default:
      return undefined;
  }
}

/** Compiles documents into a PolicySet, or throws PolicyLoadError with every problem found. */
export function compilePolicySet(docs: readonly PolicyDocument[], services: Services, diags = new Diagnostics()): PolicySet {
  const routes = docs.filter((d) => d.kind === 'HTTPRoute');
  const contributions: Contribution[] = [];
  const names = new Map<string, PolicyDocument>();
  for (const doc of docs) {
    if (doc.kind === 'HTTPRoute' || doc.kind === 'PolicyTest') continue;
    const key = `${doc.kind}/${displayName(doc)}`;
    const prev = names.get(key);
    if (prev) {
      const p = prev.root.pos;
      doc.root.error(`duplicate ${doc.kind} "${displayName(doc)}" (first defined at ${p.file}:${p.line}:${p.col})`);
      continue;
    }
    names.set(key, doc);
    const c = compileDocument(doc, routes, diags, services);
    if (c) contributions.push(c);
  }

  // Compose: documents selecting the same host set become one policy. At most one document per host may
  // authorize (identity/metadata/authorization/response) and at most one may rate-limit.
  const byHost = new Map<string, Contribution[]>();
  for (const c of contributions) {
    for (const raw of c.hosts) {
      const host = normalizeHostPattern(raw);
      if (!host) {
        c.doc.spec.error(`invalid host "${raw}": use a DNS name or *.suffix`);
        continue;
      }
      const list = byHost.get(host) ?? [];
      for (const other of list) {
        const clash =
          (c.providesAuth && other.providesAuth) ||
          (c.providesRateLimit && other.providesRateLimit) ||
          (!!c.providesTokenBudgets && !!other.providesTokenBudgets);
        if (clash && other.doc !== c.doc) {
          const p = other.doc.root.pos;
          c.doc.root.error(
            `conflict: host ${host} is already governed by ${other.doc.kind} "${displayName(other.doc)}" (${p.file}:${p.line}:${p.col}); remove one, or give them different hosts`,
          );
        }
      }
      if (!list.includes(c)) list.push(c);
      byHost.set(host, list);
    }
  }
  if (diags.hasErrors) throw new PolicyLoadError(diags.list);

  // Group hosts that have exactly the same contributors into one CompiledPolicy.
  const groups = new Map<string, { hosts: string[]; contribs: Contribution[] }>();
  for (const [host, list] of byHost) {
    const sorted = [...list].sort((a, b) => Number(b.providesAuth) - Number(a.providesAuth));
    const key = sorted.map((c) => `${c.doc.kind}/${displayName(c.doc)}`).join('+');
    const g = groups.get(key) ?? { hosts: [], contribs: sorted };
    g.hosts.push(host);
    groups.set(key, g);
  }
  const hostPolicies: CompiledPolicy[] = [];
  for (const g of groups.values()) {
    const lead = g.contribs[0]!;
    const contextNames = g.contribs.flatMap((c) => [c.doc.name, displayName(c.doc)]);
    hostPolicies.push(new CompiledPolicy(displayName(lead.doc), g.contribs.map((c) => c.parts), g.hosts, contextNames));
  }
  // Policies with no hosts: global Kyverno policies (every request no host policy governs), and native
  // policies without hosts, which only a context extension selects.
  const globals: CompiledPolicy[] = [];
  for (const c of contributions) {
    if (c.hosts.length > 0) continue;
    const p = new CompiledPolicy(displayName(c.doc), [c.parts], [], [c.doc.name, displayName(c.doc)]);
    if (c.global) globals.push(p);
    else hostPolicies.push(p);
  }
  globals.sort((a, b) => a.name.localeCompare(b.name));
  return new PolicySet(hostPolicies, globals, docs.length);
}
