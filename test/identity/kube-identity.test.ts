// The cached TokenReview identity: the same fields as before (what policies read), with repeated values shared
// between identities and everything frozen.
import { describe, expect, it } from 'vitest';
import { InternPool, internStringList } from '../../src/identity/identity-object.js';
import type { TokenReviewStatus } from '../../src/identity/kube-api.js';
import { tokenReviewStatusOf } from '../../src/identity/kube-http.js';
import { TtlLruCache } from '../../src/cache/cache.js';
import { identityTemplateCount, packTokenReviewIdentity, tokenReviewIdentity, unpackTokenReviewIdentity } from '../../src/identity/kube-identity.js';

const AUD = 'https://kubernetes.default.svc.cluster.local';

/** A TokenReview answer as the API server sends it, parsed from JSON like the client does. */
function answer(namespace: string, serviceAccount: string, jti: string): TokenReviewStatus {
  const body = JSON.stringify({
    kind: 'TokenReview',
    apiVersion: 'authentication.k8s.io/v1',
    status: {
      authenticated: true,
      user: {
        username: `system:serviceaccount:${namespace}:${serviceAccount}`,
        uid: `uid-of-${serviceAccount}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/credential-id': [`JTI=${jti}`],
          'authentication.kubernetes.io/node-name': ['kind-worker'],
          'authentication.kubernetes.io/pod-name': [`${serviceAccount}-7d4b9c8f6-x2x9q`],
        },
      },
      audiences: [AUD],
    },
  });
  return tokenReviewStatusOf(JSON.parse(body));
}

describe('tokenReviewIdentity', () => {
  it('has the fields policies read: the status as returned, plus username, namespace and serviceAccount', () => {
    const identity = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'j1'));
    expect(identity).toEqual({
      authenticated: true,
      user: {
        username: 'system:serviceaccount:ai-workloads:chatbot',
        uid: 'uid-of-chatbot',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:ai-workloads', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/credential-id': ['JTI=j1'],
          'authentication.kubernetes.io/node-name': ['kind-worker'],
          'authentication.kubernetes.io/pod-name': ['chatbot-7d4b9c8f6-x2x9q'],
        },
      },
      audiences: [AUD],
      username: 'system:serviceaccount:ai-workloads:chatbot',
      namespace: 'ai-workloads',
      serviceAccount: 'chatbot',
    });
    expect(Object.keys(identity)).toEqual(['authenticated', 'user', 'audiences', 'username', 'namespace', 'serviceAccount']);
  });

  it('shares what repeats between identities, and only that', () => {
    const a = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'j1')) as Record<string, any>;
    const b = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'j2')) as Record<string, any>;
    const c = tokenReviewIdentity(answer('ai-workloads', 'summarizer', 'j3')) as Record<string, any>;
    // Same namespace: one group list, one audience list, one node-name list.
    expect(a['user'].groups).toBe(c['user'].groups);
    expect(a['audiences']).toBe(c['audiences']);
    expect(a['user'].extra['authentication.kubernetes.io/node-name']).toBe(c['user'].extra['authentication.kubernetes.io/node-name']);
    // The pod's name and the credential id are the token's own (kept in its packed form, not shared).
    expect(a['user'].extra['authentication.kubernetes.io/pod-name']).toEqual(b['user'].extra['authentication.kubernetes.io/pod-name']);
    expect(a['user'].extra['authentication.kubernetes.io/credential-id']).not.toBe(b['user'].extra['authentication.kubernetes.io/credential-id']);
    expect(a['user'].extra['authentication.kubernetes.io/credential-id']).toEqual(['JTI=j1']);
    // Other namespace: its own group list.
    const d = tokenReviewIdentity(answer('payments', 'chatbot', 'j4')) as Record<string, any>;
    expect(d['user'].groups).not.toBe(a['user'].groups);
    expect(d['user'].groups[1]).toBe('system:serviceaccounts:payments');
  });

  it('is frozen all the way down', () => {
    const identity = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'j5')) as Record<string, any>;
    expect(Object.isFrozen(identity)).toBe(true);
    expect(Object.isFrozen(identity['user'])).toBe(true);
    expect(Object.isFrozen(identity['user'].groups)).toBe(true);
    expect(Object.isFrozen(identity['user'].extra)).toBe(true);
    expect(Object.isFrozen(identity['user'].extra['authentication.kubernetes.io/credential-id'])).toBe(true);
    expect(() => identity['user'].groups.push('system:masters')).toThrow();
  });

  it('keeps absent parts absent: no audiences, no user, a user that is not a service account', () => {
    expect(tokenReviewIdentity({ authenticated: true })).toEqual({ authenticated: true, user: {}, username: '', namespace: '', serviceAccount: '' });
    expect(tokenReviewIdentity({ authenticated: true, user: { username: 'alice@example.com', groups: [] } })).toEqual({
      authenticated: true,
      user: { username: 'alice@example.com', groups: [] },
      username: 'alice@example.com',
      namespace: '',
      serviceAccount: '',
    });
  });
});

/** Frozen at every level, as a cached identity must be. */
function expectDeepFrozen(value: unknown, path = 'identity'): void {
  if (value === null || typeof value !== 'object') return;
  expect(Object.isFrozen(value), path).toBe(true);
  for (const [k, v] of Object.entries(value)) expectDeepFrozen(v, `${path}.${k}`);
}

describe('packed identities', () => {
  it('unpack(pack(identity)) is deep-equal, with the same key order, frozen, and shares the template lists', () => {
    const original = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'p1')) as Record<string, any>;
    const packed = packTokenReviewIdentity(original);
    const rebuilt = unpackTokenReviewIdentity(packed) as Record<string, any>;
    expect(rebuilt).not.toBe(original);
    expect(rebuilt).toEqual(original);
    expect(JSON.stringify(rebuilt)).toBe(JSON.stringify(original));
    expect(Object.keys(rebuilt['user'].extra)).toEqual(Object.keys(original['user'].extra));
    expectDeepFrozen(rebuilt);
    expect(rebuilt['user'].groups).toBe(original['user'].groups);
    expect(rebuilt['audiences']).toBe(original['audiences']);
    expect(rebuilt['namespace']).toBe('ai-workloads');
    expect(rebuilt['serviceAccount']).toBe('chatbot');
  });

  it('holds only the values of the token itself: what identities share is in their template', () => {
    const packed = packTokenReviewIdentity(tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'p2')));
    expect(packed).toContain('chatbot');
    expect(packed).not.toContain('system:serviceaccount:ai-workloads'); // the template's, from the namespace
    expect(packed).toContain('JTI=p2');
    expect(packed).toContain('chatbot-7d4b9c8f6-x2x9q');
    expect(packed).not.toContain('system:authenticated');
    expect(packed).not.toContain('kind-worker');
    expect(packed).not.toContain(AUD);
    // A thousand service accounts of one namespace on one node: one template.
    const before = identityTemplateCount();
    for (let i = 0; i < 1_000; i++) packTokenReviewIdentity(tokenReviewIdentity(answer('one-namespace', `sa-${i}`, `j${i}`)));
    expect(identityTemplateCount() - before).toBe(1);
  });

  it('round-trips the absent parts: no user, no audiences, a user that is not a service account', () => {
    for (const status of [
      { authenticated: true },
      { authenticated: true, user: {} },
      { authenticated: true, user: { username: 'alice@example.com', groups: [] } },
      { authenticated: true, user: { uid: 'u-1', extra: { 'authentication.kubernetes.io/pod-name': ['a', 'b'], other: [] } }, audiences: [] },
    ] satisfies TokenReviewStatus[]) {
      const original = tokenReviewIdentity(status);
      const rebuilt = unpackTokenReviewIdentity(packTokenReviewIdentity(original));
      expect(rebuilt, JSON.stringify(status)).toEqual(original);
      expect(JSON.stringify(rebuilt)).toBe(JSON.stringify(original));
      expectDeepFrozen(rebuilt);
    }
  });

  it('keeps UUIDs as 16 bytes, whatever bytes they are, and round-trips them', () => {
    const uuids = ['00000000-0000-0000-0000-000000000000', '01000100-0001-0100-0001-010000000101', 'ffffffff-ffff-4fff-bfff-ffffffffffff'];
    for (const uuid of uuids) {
      const status: TokenReviewStatus = {
        authenticated: true,
        user: {
          username: 'system:serviceaccount:ns:sa',
          uid: uuid,
          extra: { 'authentication.kubernetes.io/credential-id': [`JTI=${uuid}`], 'authentication.kubernetes.io/pod-uid': [uuid] },
        },
      };
      const original = tokenReviewIdentity(status);
      const packed = packTokenReviewIdentity(original);
      expect(packed).not.toContain(uuid);
      expect(packed.length).toBeLessThan(70); // 3 × 36 characters as text
      expect(unpackTokenReviewIdentity(packed), uuid).toEqual(original);
    }
    // Upper case, or not quite a UUID: kept as text.
    for (const notQuite of ['FFFFFFFF-FFFF-4FFF-BFFF-FFFFFFFFFFFF', '0000000-0000-0000-0000-000000000000x', '']) {
      const original = tokenReviewIdentity({ authenticated: true, user: { uid: notQuite, extra: { 'authentication.kubernetes.io/pod-uid': [notQuite] } } });
      expect(unpackTokenReviewIdentity(packTokenReviewIdentity(original)), notQuite).toEqual(original);
    }
  });

  it('a value that contains the separator is packed whole, and still round-trips', () => {
    const status = answer('ai-workloads', 'chatbot', 'has\u0000nul');
    const original = tokenReviewIdentity(status);
    expect((original['user'] as any).extra['authentication.kubernetes.io/credential-id']).toEqual(['JTI=has\u0000nul']);
    const packed = packTokenReviewIdentity(original);
    expect(packed.startsWith('{')).toBe(true);
    expect(unpackTokenReviewIdentity(packed)).toEqual(original);
    const marked = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'has\u0001mark'));
    expect(packTokenReviewIdentity(marked).startsWith('{')).toBe(true);
    expect(unpackTokenReviewIdentity(packTokenReviewIdentity(marked))).toEqual(marked);
  });

  it('in the TokenReview cache: evicted from the hot level, rebuilt deep-equal and frozen, until it expires', () => {
    const clock = { now: 0 };
    const cache = new TtlLruCache<Readonly<Record<string, unknown>>>({
      name: 'tokenreview',
      maxEntries: 1,
      now: () => clock.now,
      packed: { maxEntries: 10, codec: { pack: packTokenReviewIdentity, unpack: unpackTokenReviewIdentity } },
    });
    const a = tokenReviewIdentity(answer('ai-workloads', 'chatbot', 'c1'));
    const b = tokenReviewIdentity(answer('payments', 'ledger', 'c2'));
    cache.set('a', a, 1_000);
    cache.set('b', b, 2_000);
    const rebuilt = cache.get('a');
    expect(rebuilt).not.toBe(a);
    expect(rebuilt).toEqual(a);
    expectDeepFrozen(rebuilt);
    expect(cache.get('b')).toEqual(b);
    clock.now = 1_000;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toEqual(b);
    clock.now = 2_000;
    expect(cache.get('b')).toBeUndefined();
  });
});

describe('tokenReviewStatusOf', () => {
  it('refuses an answer of the wrong shape instead of caching it', () => {
    expect(() => tokenReviewStatusOf({ status: { authenticated: true, user: { groups: 'system:masters' } } })).toThrow(/malformed answer/);
    expect(() => tokenReviewStatusOf({ status: { authenticated: true, user: { extra: { k: [1] } } } })).toThrow(/malformed answer/);
    expect(tokenReviewStatusOf({})).toEqual({ authenticated: false, error: 'TokenReview returned no status' });
    expect(tokenReviewStatusOf({ status: { authenticated: true, user: { extra: { k: null } } } })).toEqual({ authenticated: true, user: { extra: { k: [] } } });
  });
});

describe('interning', () => {
  it('tells apart lists a plain join would confuse', () => {
    expect(internStringList(['a,b'])).not.toBe(internStringList(['a', 'b']));
    expect(internStringList(['x', 'y'])).toBe(internStringList(['x', 'y']));
  });

  it('is bounded: a full pool starts over, and what it handed out stays valid', () => {
    const pool = new InternPool<string>(3);
    const first = pool.intern('a', 'a');
    for (const k of ['b', 'c', 'd', 'e']) pool.intern(k, k);
    expect(pool.size).toBeLessThanOrEqual(3);
    expect(first).toBe('a');
    expect(pool.intern('a', 'a-again')).toBe('a-again');
  });
});
