// The identity stage: methods in priority order; the first success wins. No success → 401 (with
// WWW-Authenticate), or 503 when a method could not reach its backend (fail closed).
import type { CheckContext, Stage } from '../pipeline/context.js';
import { deny, type Decision, type HeaderMutation } from '../pipeline/decision.js';
import { compileWhen, evalAll, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import { readCredentials } from './credentials.js';
import type { IdentityMethod, IdentityOutcome } from './method.js';
import type { MaybePromise } from '../pipeline/maybe-async.js';
import { IDENTITY_METHODS } from './methods.js';

const COMMON_KEYS = ['priority', 'when', 'credentials', 'metrics', 'cache', 'defaults', 'overrides'];

export function compileIdentityStage(node: YNode, sc: SectionContext): Stage | undefined {
  const methods: IdentityMethod[] = [];
  for (const [name, cfg] of node.entries('authentication: a map of named methods')) {
    const kinds = cfg.entries(`authentication "${name}"`).filter(([k]) => !COMMON_KEYS.includes(k));
    const known = Object.keys(IDENTITY_METHODS);
    if (kinds.length !== 1) {
      cfg.error(`authentication "${name}": give exactly one method (${known.join(', ')})`);
      continue;
    }
    const [kind, kindCfg] = kinds[0]!;
    const factory = IDENTITY_METHODS[kind];
    if (!factory) {
      cfg.checkKeys([...known, ...COMMON_KEYS], `authentication "${name}"`);
      continue;
    }
    const built = factory({
      name,
      config: kindCfg,
      credentials: readCredentials(cfg.get('credentials')),
      cacheTtlMs: readCacheTtl(cfg.get('cache'), name),
      sc,
    });
    if (!built) continue;
    methods.push({
      ...built,
      name,
      priority: cfg.get('priority')?.number('priority') ?? 0,
      when: compileWhen(cfg.get('when'), `authentication "${name}".when`, sc),
    });
  }
  if (methods.length === 0) return undefined;
  methods.sort((a, b) => a.priority - b.priority);
  const policy = sc.policy;

  /** What the methods tried so far found; only the failures are kept (a success ends the stage). */
  interface Attempts {
    unavailable?: string;
    invalid?: string;
    rejectedBy?: Set<IdentityMethod>;
  }

  /** Records one method's outcome: true when it authenticated the request (the stage is done). */
  function settle(m: IdentityMethod, out: IdentityOutcome, ctx: CheckContext, tried: Attempts, t0: number): boolean {
    if (ctx.trace) {
      ctx.addTrace({
        evaluator: 'identity',
        name: `${m.name} (${m.kind})`,
        result: out.kind === 'ok' ? `ok: ${out.label}` : out.kind === 'missing' ? 'no credential' : `${out.kind}: ${out.reason}`,
        durationMs: performance.now() - t0,
      });
    }
    if (out.kind === 'ok') {
      (ctx.auth as { identity: unknown }).identity = out.identity;
      ctx.identityLabel = out.label;
      if (out.credential) {
        ctx.credential = out.credential;
        ctx.credentialIsServiceAccountToken = out.serviceAccountToken === true;
        ctx.secrets.push(out.credential);
      }
      return true;
    }
    if (out.kind === 'unavailable') tried.unavailable ??= `${m.name}: ${out.reason}`;
    else if (out.kind === 'invalid') {
      tried.invalid ??= `${m.name}: ${out.reason}`;
      (tried.rejectedBy ??= new Set()).add(m);
    }
    return false;
  }

  /** Methods from `from` on, in priority order; synchronous while each answers from its cache. */
  function attempt(ctx: CheckContext, from: number, tried: Attempts): MaybePromise<Decision | undefined> {
    for (let i = from; i < methods.length; i++) {
      const m = methods[i]!;
      if (m.when.length && !evalAll(m.when, ctx.activation)) continue;
      const t0 = ctx.trace ? performance.now() : 0;
      const out = m.authenticate(ctx);
      if (out instanceof Promise) {
        return out.then((o) => (settle(m, o, ctx, tried, t0) ? undefined : attempt(ctx, i + 1, tried)));
      }
      if (settle(m, out, ctx, tried, t0)) return undefined;
    }
    if (tried.unavailable) return deny(policy, 'identity', 503, `identity backend unavailable (${tried.unavailable})`);
    const headers = challengeHeaders(methods, tried.rejectedBy ?? NO_REJECTIONS);
    return deny(policy, 'identity', 401, tried.invalid ?? 'no credential', { headers });
  }

  return {
    evaluator: 'identity',
    name: 'authentication',
    run: (ctx: CheckContext) => attempt(ctx, 0, {}),
  };
}

const NO_REJECTIONS: ReadonlySet<IdentityMethod> = new Set();

/** One WWW-Authenticate value per distinct challenge, flagged invalid_token when its credential was rejected. */
function challengeHeaders(methods: readonly IdentityMethod[], rejectedBy: ReadonlySet<IdentityMethod>): HeaderMutation[] {
  const byChallenge = new Map<string, boolean>();
  for (const m of methods) {
    if (!m.challenge) continue;
    byChallenge.set(m.challenge, (byChallenge.get(m.challenge) ?? false) || rejectedBy.has(m));
  }
  return [...byChallenge].map(([challenge, rejected]) => ({
    key: 'www-authenticate',
    value: rejected ? `${challenge}, error="invalid_token"` : challenge,
    action: 'append' as const,
  }));
}

/** Kuadrant's per-method `cache: {key, ttl}`: we key by the credential's hash, so only `ttl` (seconds) matters. */
function readCacheTtl(node: YNode | undefined, name: string): number | undefined {
  if (!node || node.isNull) return undefined;
  node.checkKeys(['key', 'ttl'], `authentication "${name}".cache`);
  const ttl = node.get('ttl');
  if (!ttl) return undefined;
  const seconds = ttl.number('cache.ttl: seconds');
  if (seconds === undefined) return undefined;
  if (!(seconds >= 0)) {
    ttl.error('cache.ttl must be zero or more seconds');
    return undefined;
  }
  return seconds * 1000;
}
