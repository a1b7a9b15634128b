import { describe, expect, it } from 'vitest';
import {
  ceilSeconds,
  rateLimitHeaders,
  rateLimitPolicyValue,
  rateLimitValue,
  sfString,
  type RateLimitItem,
} from '../../src/ratelimit/headers.js';

const perWorkload: RateLimitItem = { name: 'per-workload', limit: 100, windowMs: 60_000, remaining: 0, resetMs: 37_000 };

describe('RateLimit header values (draft-ietf-httpapi-ratelimit-headers-11)', () => {
  it('writes RateLimit-Policy and RateLimit items with the policy name as an sf-string', () => {
    expect(rateLimitPolicyValue([perWorkload])).toBe('"per-workload";q=100;w=60');
    expect(rateLimitValue([perWorkload])).toBe('"per-workload";r=0;t=37');
  });

  it('lists several policies, comma-separated', () => {
    const burst: RateLimitItem = { name: 'team/1s', limit: 10, windowMs: 1_000, remaining: 9, resetMs: 1_000 };
    expect(rateLimitPolicyValue([perWorkload, burst])).toBe('"per-workload";q=100;w=60, "team/1s";q=10;w=1');
    expect(rateLimitValue([perWorkload, burst])).toBe('"per-workload";r=0;t=37, "team/1s";r=9;t=1');
  });

  it('rounds windows and resets up to whole seconds, so t never points before the real reset', () => {
    expect(ceilSeconds(1)).toBe(1);
    expect(ceilSeconds(1_000)).toBe(1);
    expect(ceilSeconds(1_001)).toBe(2);
    expect(ceilSeconds(0)).toBe(0);
    const subSecond: RateLimitItem = { name: 'fast', limit: 5, windowMs: 500, remaining: 4, resetMs: 250 };
    expect(rateLimitPolicyValue([subSecond])).toBe('"fast";q=5;w=1');
    expect(rateLimitValue([subSecond])).toBe('"fast";r=4;t=1');
  });

  it('escapes quotes and backslashes and replaces characters an sf-string cannot hold', () => {
    expect(sfString('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(sfString('équipe\n')).toBe('"?quipe?"');
  });

  it('a 429 carries Retry-After (at least 1 s) and overwrites; an allow appends to the upstream response', () => {
    expect(rateLimitHeaders([perWorkload], { retryAfterMs: 36_001, action: 'overwrite' })).toEqual([
      { key: 'retry-after', value: '37', action: 'overwrite' },
      { key: 'ratelimit-policy', value: '"per-workload";q=100;w=60', action: 'overwrite' },
      { key: 'ratelimit', value: '"per-workload";r=0;t=37', action: 'overwrite' },
    ]);
    expect(rateLimitHeaders([perWorkload], { retryAfterMs: 0, action: 'overwrite' })[0]).toMatchObject({ value: '1' });
    expect(rateLimitHeaders([perWorkload], { action: 'append' }).map((h) => [h.key, h.action])).toEqual([
      ['ratelimit-policy', 'append'],
      ['ratelimit', 'append'],
    ]);
    expect(rateLimitHeaders([], { action: 'append' })).toEqual([]);
  });
});
