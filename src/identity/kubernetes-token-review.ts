// `kubernetesTokenReview`: asks the API server (TokenReview) whether the workload's token is valid for the
// configured audiences. The identity is the review's status as Kubernetes returns it (authenticated, user
// {username, uid, groups, extra}, audiences) plus the convenience fields username, namespace, serviceAccount.
//
// Verdicts are cached in the shared cache under the SHA-256 of the token (and audiences): a success until the
// token expires or the TTL passes, whichever is first; a rejection briefly; a backend failure not at all.
// Concurrent Checks with one new token make one TokenReview. The API server being down or slow answers 503.
import { TtlLruCache, type Loaded, type PackedCodec, secretKey } from '../cache/cache.js';
import type { Services } from '../pipeline/services.js';
import { warnBackendThrottled } from './backend-log.js';
import { challengeFor } from './credentials.js';
import { waitWithinDeadline, type Waited } from '../pipeline/deadline.js';
import { unverifiedExpiry } from './identity-object.js';
import { kubeApiFor, type KubeApi, type TokenReviewStatus } from './kube-client.js';
import { packTokenReviewIdentity, tokenReviewIdentity, unpackTokenReviewIdentity } from './kube-identity.js';
import type { IdentityMethodFactory, IdentityOutcome } from './method.js';

/** How long a success is trusted when the token itself allows longer (the apiserver's own webhook default). */
export const TOKEN_REVIEW_DEFAULT_TTL_MS = 120_000;
/** How long a rejected token stays rejected without asking again. */
export const TOKEN_REVIEW_NEGATIVE_TTL_MS = 5_000;
/** A TokenReview keeps running this long after the Checks waiting for it gave up, to fill the cache. */
const BACKEND_TIMEOUT_MS = 2_000;
/**
 * Verdicts kept at most: 100,000 distinct workload tokens (issue 9's target). Two levels (cache.ts): the
 * HOT_ENTRIES identities used last as built objects (~1 KiB of heap each), whose hits cost what they always
 * did; the others packed, one string each, ~0.2 KiB with its key (kube-identity.ts), rebuilt into an object on
 * their next use (a few µs, no TokenReview). A full cache holds ~21 MiB of packed identities + ~4 MiB hot.
 */
const CACHE_MAX_ENTRIES = 100_000;
/** Identities kept built: more than the workloads one gateway replica sees at once in most clusters. */
const HOT_ENTRIES = 4_096;

/** A token TokenReview did not accept, or could not be asked about. */
class Rejection {
  constructor(
    readonly kind: 'invalid' | 'unavailable',
    readonly reason: string,
  ) {}
}

/** An accepted token's identity itself (nothing wrapped around it: 100,000 of them may be cached), or why not. */
type Verdict = Readonly<Record<string, unknown>> | Rejection;

/**
 * Identities are packed; rejections are not (they live 5 s at most, in the hot level only: one evicted from
 * there before it expires costs one more TokenReview, not a wrong answer).
 */
const VERDICT_CODEC: PackedCodec<Verdict> = {
  pack: (verdict) => (verdict instanceof Rejection ? undefined : packTokenReviewIdentity(verdict)),
  unpack: unpackTokenReviewIdentity,
};

/**
 * The process-wide TokenReview verdict caches (kept across policy reloads): one per audience set, keyed by the
 * token's hash alone, so a cached entry's key is one 43-character string. Policies use few audience sets.
 */
export function tokenReviewCache(services: Services, audienceKey: string): TtlLruCache<Verdict> {
  const caches = services.singleton('identity:tokenreview-caches', () => new Map<string, TtlLruCache<Verdict>>());
  let cache = caches.get(audienceKey);
  if (!cache) {
    cache = new TtlLruCache<Verdict>({
      name: 'tokenreview',
      maxEntries: HOT_ENTRIES,
      packed: { maxEntries: CACHE_MAX_ENTRIES, codec: VERDICT_CODEC },
      observer: services.metrics.cacheObserver(),
    });
    caches.set(audienceKey, cache);
  }
  return cache;
}

export const kubernetesTokenReviewMethod: IdentityMethodFactory = ({ config, credentials, cacheTtlMs, sc }) => {
  config.checkKeys(['audiences'], 'kubernetesTokenReview');
  const audiences = config.get('audiences')?.stringList('audiences: a list of audiences') ?? [];
  const services = sc.services;
  const kube = kubeApiFor(services);
  const ttlMs = cacheTtlMs ?? TOKEN_REVIEW_DEFAULT_TTL_MS;
  const cache = tokenReviewCache(services, audiences.join('\n'));

  async function review(token: string): Promise<Loaded<Verdict>> {
    let api: KubeApi;
    try {
      api = await kube.ready();
    } catch (err) {
      return { value: new Rejection('unavailable', (err as Error).message), ttlMs: 0 };
    }
    try {
      const status = await services.metrics.timeBackend(
        'tokenreview',
        () => api.tokenReview(token, audiences, AbortSignal.timeout(BACKEND_TIMEOUT_MS)),
        (s) => (s.authenticated ? 'authenticated' : 'rejected'),
      );
      if (!status.authenticated) {
        return { value: new Rejection('invalid', rejectionReason(status)), ttlMs: Math.min(TOKEN_REVIEW_NEGATIVE_TTL_MS, ttlMs) };
      }
      return { value: identityOf(status), ttlMs: successTtlMs(ttlMs, unverifiedExpiry(token)) };
    } catch (err) {
      const reason = (err as Error).message;
      warnBackendThrottled(services.logger, 'tokenreview', `TokenReview failed: ${reason}`);
      return { value: new Rejection('unavailable', reason), ttlMs: 0 };
    }
  }

  return {
    kind: 'kubernetesTokenReview',
    challenge: challengeFor(credentials, 'Bearer'),
    authenticate(ctx) {
      const token = credentials.extract(ctx.view);
      if (!token) return MISSING;
      // Keyed by the token's hash (secretKey remembers it for the tokens seen last; Vault's login key uses it too).
      const key = secretKey(token);
      if (ctx.background) {
        // A background run continues from a review that landed; one that failed is not asked again here
        // (failures are not cached): the workload's retry does that, and an API server in trouble gets no extra
        // reviews from Checks that were already answered.
        const cached = cache.get(key);
        return cached === undefined ? NOT_IN_BACKGROUND : outcomeOf({ done: true, value: cached }, token);
      }
      const waited = waitWithinDeadline(cache.getOrLoad(key, () => review(token)), ctx);
      return waited instanceof Promise ? waited.then((w) => outcomeOf(w, token)) : outcomeOf(waited, token);
    },
  };

  function outcomeOf(waited: Waited<Verdict>, token: string): IdentityOutcome {
    if (!waited.done) {
      const why = kube.current() ? 'TokenReview did not answer within the deadline' : 'the Kubernetes client is not ready';
      return { kind: 'unavailable', reason: why };
    }
    const verdict = waited.value;
    if (verdict instanceof Rejection) return { kind: verdict.kind, reason: verdict.reason };
    const label = String(verdict['username'] || 'kubernetes user');
    return { kind: 'ok', identity: verdict as Record<string, unknown>, label, credential: token, serviceAccountToken: true };
  }
};

const MISSING: IdentityOutcome = { kind: 'missing' };
const NOT_IN_BACKGROUND: IdentityOutcome = { kind: 'unavailable', reason: 'no cached TokenReview verdict (background run)' };

/** How long an accepted token's verdict is cached: the TTL, cut short by the token's own expiry. */
export function successTtlMs(ttlMs: number, expSeconds: number | undefined, now = Date.now()): number {
  return expSeconds === undefined ? ttlMs : Math.min(ttlMs, expSeconds * 1000 - now);
}

/** The TokenReview status as the identity, plus convenience fields; frozen because it is cached and shared. */
function identityOf(status: TokenReviewStatus): Readonly<Record<string, unknown>> {
  // Built from a template shared with identities of the same namespace, node and audiences; see kube-identity.ts.
  return tokenReviewIdentity(status);
}

/**
 * A short, secret-free reason from the API server's error text (which varies by version and authenticator):
 * the workload learns whether its token expired or was minted for another audience.
 */
function rejectionReason(status: TokenReviewStatus): string {
  const error = status.error ?? '';
  if (/expired/i.test(error)) return 'token expired';
  if (/audience/i.test(error)) return 'token audience not accepted';
  if (/not valid yet|issued in the future/i.test(error)) return 'token not valid yet';
  return 'token rejected by TokenReview';
}
