// What a provider's response says about token usage, and how a provider's format is read.
import type { CapturedFields } from './json-scanner.js';

export type ProviderName = 'openai' | 'anthropic' | 'gemini';

/** Token counts reported so far; a count the response did not carry is absent. */
export interface TokenUsage {
  readonly input?: number;
  readonly output?: number;
  readonly total?: number;
}

export interface UsageFormat {
  readonly name: ProviderName;
  /** Dotted JSON paths (top-level of a JSON body or of one SSE event's data) this format reads. */
  readonly paths: readonly string[];
  /** True when the captured fields have this provider's shape (used when the policy says `auto`). */
  recognizes(fields: CapturedFields): boolean;
  /** The usage the fields carry (counts reported so far), or undefined when they carry none. */
  usageOf(fields: CapturedFields): TokenUsage | undefined;
}

/** A non-negative whole number of tokens, or undefined. */
export function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Adds the counts that are present; undefined when none is. */
export function sumCounts(...values: Array<number | undefined>): number | undefined {
  let sum: number | undefined;
  for (const value of values) if (value !== undefined) sum = (sum ?? 0) + value;
  return sum;
}

/** Drops absent counts; undefined when nothing is left. */
export function usageFrom(input: number | undefined, output: number | undefined, total: number | undefined): TokenUsage | undefined {
  if (input === undefined && output === undefined && total === undefined) return undefined;
  return {
    ...(input !== undefined ? { input } : {}),
    ...(output !== undefined ? { output } : {}),
    ...(total !== undefined ? { total } : {}),
  };
}
