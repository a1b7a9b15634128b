// The hand-over from Check to ext_proc: which budgets a request spends from. The budget stage puts a grant
// into CheckResponse.dynamic_metadata; Envoy stores it under the ext_authz filter's namespace and forwards
// that namespace to ext_proc (metadata_options.forwarding_namespaces), which debits the usage it reads from
// the response. ext_proc trusts nothing else and never re-authenticates: workloads cannot write Envoy's
// dynamic metadata. Counter keys travel as SHA-256 digests, so counter values (which may come from headers)
// never show up in Envoy's metadata or access logs.
import { createHash } from 'node:crypto';
import { structToJs, type ProtoMetadata } from '../envoy/codec.js';
import type { ProviderChoice } from '../extproc/usage/response-reader.js';

/** Envoy's namespace for the dynamic metadata an ext_authz server returns. */
export const EXT_AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';
/** The key of the grant inside that namespace. */
export const GRANT_METADATA_KEY = 'tokenBudgets';
const GRANT_VERSION = 1;

export type BudgetCount = 'input' | 'output' | 'total';
export const BUDGET_COUNTS: readonly BudgetCount[] = ['input', 'output', 'total'];

export interface GrantedBudget {
  readonly name: string;
  /** SHA-256 (hex) of the budget's counter key: what the store counts under. */
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly count: BudgetCount;
  /** Tokens reserved at Check (0: none). */
  readonly reserved: number;
  /** Start of the window the reservation was made in (store clock); releases only apply to that window. */
  readonly windowStartMs?: number;
}

/** Tokens charged when a response's usage is unknown, per kind of budget. */
export interface FallbackCost {
  readonly input: number;
  readonly output: number;
  readonly total: number;
}

export interface BudgetGrant {
  readonly policy: string;
  /** The caller as the identity stage named it (for logs). */
  readonly identity?: string;
  readonly provider: ProviderChoice;
  /** Absent: unknown usage charges nothing more (a reservation stays charged). */
  readonly fallback?: FallbackCost;
  readonly budgets: readonly GrantedBudget[];
}

/** Bounds on what ext_proc accepts from metadata (defence in depth: Envoy is the only writer). */
const MAX_BUDGETS = 32;
/** Longest policy, budget or identity text carried (a namespaced Kubernetes name fits with room to spare). */
const MAX_TEXT = 1024;

export function budgetKeyDigest(counterKey: string): string {
  return createHash('sha256').update(counterKey).digest('hex');
}

export function grantToMetadata(grant: BudgetGrant): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: GRANT_VERSION,
    policy: grant.policy,
    provider: grant.provider,
    budgets: grant.budgets.map((budget) => ({
      name: budget.name,
      key: budget.key,
      limit: budget.limit,
      window_ms: budget.windowMs,
      count: budget.count,
      reserved: budget.reserved,
      ...(budget.windowStartMs !== undefined ? { window_start_ms: budget.windowStartMs } : {}),
    })),
  };
  // The identity is only a label for logs: cut rather than lose the grant.
  if (grant.identity !== undefined && grant.identity.length > 0) out.identity = grant.identity.slice(0, MAX_TEXT);
  if (grant.fallback !== undefined) {
    out.fallback = { input: grant.fallback.input, output: grant.fallback.output, total: grant.fallback.total };
  }
  return out;
}

/** The grant in ProcessingRequest.metadata_context, or undefined when absent or not a valid grant. */
export function readGrant(metadata: ProtoMetadata | null | undefined): BudgetGrant | undefined {
  const namespace = metadata?.filterMetadata?.[EXT_AUTHZ_NAMESPACE];
  if (!namespace) return undefined;
  return grantFromMetadata(structToJs(namespace)[GRANT_METADATA_KEY]);
}

/**
 * A decoded google.protobuf.Struct as plain values. Reads the `kind` oneof protobufjs exposes on decoded
 * messages: their unset fields read as defaults ('' for string_value), so testing fields one by one would
 * turn every number into ''.
 */
export function grantFromMetadata(value: unknown): BudgetGrant | undefined {
  if (!isRecord(value) || value.v !== GRANT_VERSION) return undefined;
  const policy = text(value.policy);
  const provider = value.provider;
  if (policy === undefined || !isProviderChoice(provider)) return undefined;
  if (!Array.isArray(value.budgets) || value.budgets.length === 0 || value.budgets.length > MAX_BUDGETS) return undefined;
  const budgets: GrantedBudget[] = [];
  for (const item of value.budgets) {
    const budget = budgetFrom(item);
    if (!budget) return undefined;
    budgets.push(budget);
  }
  let fallback: FallbackCost | undefined;
  if (value.fallback !== undefined) {
    if (!isRecord(value.fallback)) return undefined;
    const input = count(value.fallback.input);
    const output = count(value.fallback.output);
    const total = count(value.fallback.total);
    if (input === undefined || output === undefined || total === undefined) return undefined;
    fallback = { input, output, total };
  }
  // A label for logs only: an unusable one is dropped, the grant still counts.
  const identity = text(value.identity);
  return {
    policy,
    provider,
    budgets,
    ...(identity !== undefined ? { identity } : {}),
    ...(fallback !== undefined ? { fallback } : {}),
  };
}

function budgetFrom(item: unknown): GrantedBudget | undefined {
  if (!isRecord(item)) return undefined;
  const name = text(item.name);
  const key = typeof item.key === 'string' && /^[0-9a-f]{64}$/.test(item.key) ? item.key : undefined;
  const limit = count(item.limit);
  const windowMs = count(item.window_ms);
  const reserved = count(item.reserved);
  const budgetCount = item.count;
  if (name === undefined || key === undefined || limit === undefined || windowMs === undefined || windowMs === 0) return undefined;
  if (reserved === undefined || !BUDGET_COUNTS.includes(budgetCount as BudgetCount)) return undefined;
  let windowStartMs: number | undefined;
  if (item.window_start_ms !== undefined) {
    windowStartMs = count(item.window_start_ms);
    if (windowStartMs === undefined) return undefined;
  }
  return {
    name,
    key,
    limit,
    windowMs,
    count: budgetCount as BudgetCount,
    reserved,
    ...(windowStartMs !== undefined ? { windowStartMs } : {}),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT ? value : undefined;
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function isProviderChoice(value: unknown): value is ProviderChoice {
  return value === 'auto' || value === 'openai' || value === 'anthropic' || value === 'gemini';
}
