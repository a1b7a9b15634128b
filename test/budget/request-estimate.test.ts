import { describe, expect, it } from 'vitest';
import { requestedMaxTokens } from '../../src/budget/request-estimate.js';

describe('requestedMaxTokens', () => {
  it('reads each provider\'s cap', () => {
    expect(requestedMaxTokens('{"model":"gpt","max_completion_tokens":700,"max_tokens":9}')).toBe(700);
    expect(requestedMaxTokens('{"model":"gpt","max_tokens":64}')).toBe(64);
    expect(requestedMaxTokens('{"model":"gpt","max_output_tokens":128}')).toBe(128);
    expect(requestedMaxTokens('{"contents":[],"generationConfig":{"maxOutputTokens":256}}')).toBe(256);
  });

  it('ignores bodies it cannot use', () => {
    for (const body of ['', 'max_tokens=5', '{"max_tokens": 5', '{"max_tokens": -5}', '{"max_tokens": 1.5}', '[{"max_tokens":5}]', '{"max_tokens":"5"}']) {
      expect(requestedMaxTokens(body)).toBeUndefined();
    }
  });
});
