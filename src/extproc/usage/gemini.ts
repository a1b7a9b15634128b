// Gemini (generateContent / streamGenerateContent) usage.
//   JSON:  {"candidates":[...], "usageMetadata":{"promptTokenCount","candidatesTokenCount","totalTokenCount",
//           "thoughtsTokenCount","toolUsePromptTokenCount","cachedContentTokenCount"}}
//   SSE (alt=sse): every data: chunk carries usageMetadata with the counts so far; the last one is final.
// Input = prompt + tool-use prompt tokens (cached content is part of the prompt count); output = candidates +
// thoughts; total = totalTokenCount when given.
import type { CapturedFields } from './json-scanner.js';
import { isRecord, sumCounts, tokenCount, usageFrom, type TokenUsage, type UsageFormat } from './types.js';

function readUsage(usage: unknown): TokenUsage | undefined {
  if (!isRecord(usage)) return undefined;
  const input = sumCounts(tokenCount(usage.promptTokenCount), tokenCount(usage.toolUsePromptTokenCount));
  const output = sumCounts(tokenCount(usage.candidatesTokenCount), tokenCount(usage.thoughtsTokenCount));
  return usageFrom(input, output, tokenCount(usage.totalTokenCount));
}

export const geminiFormat: UsageFormat = {
  name: 'gemini',
  paths: ['usageMetadata'],
  recognizes(fields: CapturedFields): boolean {
    return fields.has('usageMetadata');
  },
  usageOf(fields: CapturedFields): TokenUsage | undefined {
    return readUsage(fields.get('usageMetadata'));
  },
};
