import { describe, expect, it } from 'vitest';
import { formatWindow, parseWindow } from '../../src/ratelimit/store.js';

describe('parseWindow', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['2s500ms', 2_500],
    [' 1m ', 60_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseWindow(text)).toBe(ms);
  });

  it.each(['', '1', '60', 'm', '1.5m', '-1m', '1w', '1 m', '0s', '1m0', 'ms'])('rejects %j with a message naming it', (text) => {
    expect(() => parseWindow(text)).toThrow(/invalid rate-limit window .*expected e\.g\. "500ms"/);
  });

  it('formats windows back in their shortest form', () => {
    expect(['500ms', '10s', '1m', '1h30m', '1d', '2s500ms'].map((text) => formatWindow(parseWindow(text)))).toEqual([
      '500ms', '10s', '1m', '1h30m', '1d', '2s500ms',
    ]);
  });
});
