// The cached TokenReview identity: the same fields as before (what policies read), with repeated values shared
// between identities and everything frozen.
import { describe, expect, it } from 'vitest';
import { InternPool, internStringList } from '../../src/identity/identity-object.js';
import type { TokenReviewStatus } from '../../src/identity/kube-api.js';
import { tokenReviewStatusOf } from '../../src/identity/kube-http.js';
import { tokenReviewIdentity } from '../../src/identity/kube-identity.js';

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
    // Same pod, new token: the pod's name is shared, the credential id is not.
    expect(a['user'].extra['authentication.kubernetes.io/pod-name']).toBe(b['user'].extra['authentication.kubernetes.io/pod-name']);
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
