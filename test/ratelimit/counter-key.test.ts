import { describe, expect, it } from 'vitest';
import { counterKeyPrefix, counterKeyWith, CounterValueError } from '../../src/ratelimit/counter-key.js';

const counterKey = (policy: string, limit: string, values: readonly unknown[]): string =>
  counterKeyWith(counterKeyPrefix(policy, limit), values);

describe('counterKey', () => {
  it('separates policies, limits and values', () => {
    const keys = [
      counterKey('ns/a', 'per-workload', ['system:serviceaccount:team-a:client']),
      counterKey('ns/b', 'per-workload', ['system:serviceaccount:team-a:client']),
      counterKey('ns/a', 'per-team', ['system:serviceaccount:team-a:client']),
      counterKey('ns/a', 'per-workload', ['system:serviceaccount:team-b:client']),
      counterKey('ns/a', 'per-workload', []),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('never lets values of different types or splits collide', () => {
    const keys = [
      counterKey('p', 'l', [1n]),
      counterKey('p', 'l', [1]),
      counterKey('p', 'l', ['1']),
      counterKey('p', 'l', [true]),
      counterKey('p', 'l', ['true']),
      counterKey('p', 'l', ['a', 'b']),
      counterKey('p', 'l', ['a,b']),
      counterKey('p', 'l', [['a', 'b']]),
      counterKey('p', 'l', [{ int: '1' }]),
      counterKey('p', 'l', ['a\u0000"b"']),
      counterKey('p', 'l\u0000"a"', []),
      counterKey('p', 'l', [new Uint8Array([1, 2])]),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('is the same for equal maps whatever their key order, plain objects and Maps alike', () => {
    expect(counterKey('p', 'l', [{ b: 1n, a: 'x' }])).toBe(counterKey('p', 'l', [{ a: 'x', b: 1n }]));
    expect(counterKey('p', 'l', [new Map<string, unknown>([['b', 1n], ['a', 'x']])])).toBe(counterKey('p', 'l', [{ a: 'x', b: 1n }]));
  });

  it('refuses null values (a budget keyed by null is shared by every request that lacks the value)', () => {
    expect(() => counterKey('p', 'l', ['x', null])).toThrow(new CounterValueError('counter 2 evaluated to null'));
    expect(() => counterKey('p', 'l', [{ a: null }])).toThrow(CounterValueError);
  });
});
