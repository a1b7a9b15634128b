// OpenAI usage.
//   Chat Completions, JSON:  {"object":"chat.completion", ..., "usage":{"prompt_tokens","completion_tokens","total_tokens"}}
//   Chat Completions, SSE:   data: {"object":"chat.completion.chunk", ..., "usage":null} ... and, when the request set
//                            stream_options.include_usage, a last chunk {"choices":[],"usage":{...}} before data: [DONE]
//   Responses, JSON:         {"object":"response", ..., "usage":{"input_tokens","output_tokens","total_tokens"}}
//   Responses, SSE:          event: response.completed / response.incomplete / response.failed
//                            data: {"type":"response.completed","response":{..., "usage":{...}}}
// completion_tokens / output_tokens already include reasoning tokens.
import type { CapturedFields } from './json-scanner.js';
import { isRecord, tokenCount, usageFrom, type TokenUsage, type UsageFormat } from './types.js';

function readUsage(usage: unknown): TokenUsage | undefined {
  if (!isRecord(usage)) return undefined;
  const input = tokenCount(usage.prompt_tokens) ?? tokenCount(usage.input_tokens);
  const output = tokenCount(usage.completion_tokens) ?? tokenCount(usage.output_tokens);
  return usageFrom(input, output, tokenCount(usage.total_tokens));
}

export const openaiFormat: UsageFormat = {
  name: 'openai',
  paths: ['usage', 'response.usage', 'object', 'type'],
  recognizes(fields: CapturedFields): boolean {
    const object = fields.get('object');
    const type = fields.get('type');
    if (typeof object === 'string' && (object.startsWith('chat.completion') || object === 'response')) return true;
    if (typeof type === 'string' && type.startsWith('response.')) return true;
    if (fields.has('response.usage')) return true;
    const usage = fields.get('usage');
    return isRecord(usage) && ('prompt_tokens' in usage || 'completion_tokens' in usage || ('input_tokens' in usage && 'total_tokens' in usage));
  },
  usageOf(fields: CapturedFields): TokenUsage | undefined {
    return readUsage(fields.get('usage')) ?? readUsage(fields.get('response.usage'));
  },
};
