import { describe, expect, it } from 'vitest';
import { convenienceFields, deepFreeze, serviceAccountOf, unverifiedExpiry } from '../../src/identity/identity-object.js';

describe('identity helpers', () => {
  it('splits a ServiceAccount user name, and leaves other users without namespace', () => {
    expect(serviceAccountOf('system:serviceaccount:ai-workloads:chatbot')).toEqual({ namespace: 'ai-workloads', serviceAccount: 'chatbot' });
    expect(serviceAccountOf('alice@example.com')).toBeUndefined();
    expect(convenienceFields('alice@example.com')).toEqual({ username: 'alice@example.com', namespace: '', serviceAccount: '' });
    expect(convenienceFields(undefined)).toEqual({ username: '', namespace: '', serviceAccount: '' });
  });

  it('freezes nested values', () => {
    const v = deepFreeze({ user: { groups: ['a'] } });
    expect(Object.isFrozen(v.user.groups)).toBe(true);
    expect(() => (v.user.groups as string[]).push('b')).toThrow();
  });

  it('reads exp from a JWT without trusting it, and nothing from other strings', () => {
    const jwt = `e30.${Buffer.from(JSON.stringify({ exp: 1234 })).toString('base64url')}.sig`;
    expect(unverifiedExpiry(jwt)).toBe(1234);
    expect(unverifiedExpiry('opaque-token')).toBeUndefined();
    expect(unverifiedExpiry('a.!!!.c')).toBeUndefined();
    expect(unverifiedExpiry(`e30.${Buffer.from('{"exp":"soon"}').toString('base64url')}.s`)).toBeUndefined();
  });
});
