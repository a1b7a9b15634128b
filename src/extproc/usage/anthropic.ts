// Anthropic Messages usage.
//   JSON:  {"type":"message", ..., "usage":{"input_tokens","output_tokens","cache_creation_input_tokens","cache_read_input_tokens"}}
//   SSE:   event: message_start  data: {"type":"message_start","message":{..., "usage":{"input_tokens":N,"output_tokens":1,...}}}
//          event: message_delta  data: {"type":"message_delta","delta":{...},"usage":{"output_tokens":M}}  (cumulative)
// Input counts cache writes and reads too (input_tokens excludes them, and they are billed input).
import type { CapturedFields } from './json-scanner.js';
import { isRecord, sumCounts, tokenCount, usageFrom, type TokenUsage, type UsageFormat } from './types.js';

function readUsage(usage: unknown): TokenUsage | undefined {
  if (!isRecord(usage)) return undefined;
  const input = sumCounts(
    tokenCount(usage.input_tokens),
    tokenCount(usage.cache_creation_input_tokens),
    tokenCount(usage.cache_read_input_tokens),
  );
  return usageFrom(input, tokenCount(usage.output_tokens), undefined);
}

export const anthropicFormat: UsageFormat = {
  name: 'anthropic',
  paths: ['usage', 'message.usage', 'type'],
  recognizes(fields: CapturedFields): boolean {
    const type = fields.get('type');
    if (typeof type === 'string' && (type === 'message' || type.startsWith('message_'))) return true;
    if (fields.has('message.usage')) return true;
    const usage = fields.get('usage');
    return isRecord(usage) && ('cache_creation_input_tokens' in usage || 'cache_read_input_tokens' in usage);
  },
  usageOf(fields: CapturedFields): TokenUsage | undefined {
    return readUsage(fields.get('message.usage')) ?? readUsage(fields.get('usage'));
  },
};
