import { describe, expect, it } from 'vitest';
import { rewriteNullLiterals } from '../../src/cel/null-literal.js';

describe('rewriteNullLiterals', () => {
  it('rewrites the null literal and nothing else', () => {
    expect(rewriteNullLiterals('a ? b : null').text).toBe('a ? b : dyn(null)');
    expect(rewriteNullLiterals('x.null == nullable || "null" == \'null\' || r"null" != null').text).toBe(
      'x.null == nullable || "null" == \'null\' || r"null" != dyn(null)',
    );
    expect(rewriteNullLiterals('"""a "null" b""" + null').text).toBe('"""a "null" b""" + dyn(null)');
    expect(rewriteNullLiterals('"esc \\" null" + null').text).toBe('"esc \\" null" + dyn(null)');
  });

  it('maps offsets after a rewrite back to the original text', () => {
    const src = 'c ? null : x.bad';
    const rw = rewriteNullLiterals(src);
    const badAt = rw.text.indexOf('bad');
    expect(rw.originalOffset(badAt)).toBe(src.indexOf('bad'));
    expect(rw.originalOffset(rw.text.indexOf('c'))).toBe(0);
    expect(rw.originalOffset(rw.text.indexOf('null'))).toBe(src.indexOf('null'));
  });
});
