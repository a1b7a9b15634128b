// The contract every rate-limit counting store fulfils, and the window syntax policies use.
//
// Algorithm (the same in every store; docs/rate-limits.md has the full semantics): a fixed window per
// counter, anchored at the counter's first spend (as Limitador does). A Check tests every counter of
// every rate that applies and spends `cost` on all of them only when all of them have room; a denied
// Check spends nothing anywhere.

/** One counter to test: `key` identifies the budget (limit name + counter values), `limit` units per `windowMs`. */
export interface HitCounter {
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface HitRequest {
  readonly counters: readonly HitCounter[];
  /** Units to spend on every counter when all have room (default 1). 0 checks without spending. */
  readonly cost?: number;
  /**
   * The clock reading to use (ms since the epoch). The memory store uses it instead of its own clock;
   * the Redis store uses it only when built with `clock: 'caller'` (default: the Redis server's clock,
   * so replicas with skewed clocks still agree on every window).
   */
  readonly nowMs?: number;
}

export interface CounterState {
  readonly limit: number;
  readonly windowMs: number;
  /** Units left in the current window after this Check (unchanged by a denied Check). */
  readonly remaining: number;
  /** Milliseconds until this counter's current window ends (a counter with no open window reports `windowMs`). */
  readonly resetMs: number;
  /** True when this counter alone would have denied the Check. */
  readonly exceeded: boolean;
}

export interface HitResult {
  readonly allowed: boolean;
  /** One entry per request counter, same order. */
  readonly counters: readonly CounterState[];
  /**
   * When denied: the exceeded counter whose window ends last (ties: the first), i.e. the one that decides
   * when the same request could pass again — the value for `Retry-After`.
   */
  readonly exceededIndex?: number;
}

export type RateLimitStoreKind = 'memory' | 'redis';

/**
 * One budget of a `debit` (token budgets, docs/token-budgets.md): a counter as in `hit`, with its own cost.
 * Budgets count units consumed after the fact (tokens a response reported), so a debit may take a
 * counter past its limit; the next Check then finds no room.
 */
export interface DebitCounter extends HitCounter {
  /** Units to add to the counter's current window (≥ 0); a counter with no open window opens one. */
  readonly cost: number;
  /**
   * Units reserved earlier (by a debit with `ifRoom`) that are given back now: subtracted (never below 0)
   * only when the counter's current window is the one that started at `windowStartMs`, the start the
   * reserving debit reported. A reservation whose window has ended is gone with its window.
   */
  readonly release?: { readonly units: number; readonly windowStartMs: number };
}

export interface DebitRequest {
  readonly counters: readonly DebitCounter[];
  /**
   * true: spend only if every counter has room for its cost (`used + cost ≤ limit`; cost 0: `used < limit`),
   * else spend nothing — a reservation. false (default): spend whatever the counts (usage already consumed).
   * Releases are only allowed without `ifRoom`.
   */
  readonly ifRoom?: boolean;
  /** As in HitRequest. */
  readonly nowMs?: number;
}

export interface DebitState extends CounterState {
  /** Units counted in the current window after this call. */
  readonly used: number;
  /** Start of the current window by the store's clock (ms since the epoch); undefined when none is open. */
  readonly windowStartMs: number | undefined;
}

export interface DebitResult {
  /** Always true without `ifRoom`. */
  readonly allowed: boolean;
  readonly counters: readonly DebitState[];
  /** When refused: the exceeded counter whose window ends last (the value for Retry-After). */
  readonly exceededIndex?: number;
}

export interface RateLimitStore {
  readonly kind: RateLimitStoreKind;
  /** Test all counters and, only if all have room, spend `cost` on each — one atomic step. */
  hit(request: HitRequest): Promise<HitResult>;
  /** The same, answered synchronously (in-process stores): lets a warm Check be decided without a promise. */
  hitNow?(request: HitRequest): HitResult;
  /** Token-budget accounting: per-counter costs, optional reservation (`ifRoom`) and release — one atomic step. */
  debit(request: DebitRequest): Promise<DebitResult>;
  close(): Promise<void>;
}

export type RateLimitStoreUnavailableReason = 'not-connected' | 'timeout' | 'closed' | 'error';

/**
 * The store could not answer (Redis down, slow or closed). The caller applies the limit's failure mode.
 * The message never carries connection strings, credentials or counter keys.
 */
export class RateLimitStoreUnavailableError extends Error {
  override readonly name = 'RateLimitStoreUnavailableError';
  constructor(
    readonly reason: RateLimitStoreUnavailableReason,
    detail: string,
  ) {
    super(`rate-limit store unavailable (${reason}): ${detail}`);
  }
}

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const WINDOW_COMPONENT = /(\d+)(ms|s|m|h|d)/y;

/**
 * Parses a window such as "500ms", "10s", "1m", "1h", "1d" or Kuadrant's compound form ("1h30m", "1m30s")
 * into milliseconds. Integer components only; like Go's time.ParseDuration (which Kuadrant validates
 * windows with) components simply add up, whatever their order.
 */
export function parseWindow(text: string): number {
  const source = text.trim();
  const fail = (why: string): never => {
    throw new Error(
      `invalid rate-limit window ${JSON.stringify(text)}: ${why} (expected e.g. "500ms", "10s", "1m", "1h", "1d", "1h30m")`,
    );
  };
  if (source === '') fail('empty');
  let totalMs = 0;
  let position = 0;
  while (position < source.length) {
    WINDOW_COMPONENT.lastIndex = position;
    const match = WINDOW_COMPONENT.exec(source);
    if (match === null) fail(`unexpected ${JSON.stringify(source.slice(position))}`);
    const [whole, digits, unit] = match as RegExpExecArray & [string, string, string];
    totalMs += Number(digits) * (UNIT_MS[unit] as number);
    position += whole.length;
  }
  if (totalMs <= 0) fail('must be longer than 0');
  if (!Number.isSafeInteger(totalMs)) fail('too long');
  return totalMs;
}

/** The shortest canonical spelling of a window in milliseconds ("1m", "1h30m", "1500ms"). */
export function formatWindow(windowMs: number): string {
  let rest = windowMs;
  let text = '';
  for (const [unit, unitMs] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const count = Math.floor(rest / unitMs);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * unitMs;
    }
  }
  return text === '' ? '0ms' : text;
}

/** Rejects requests no store can honour; shared so every store fails the same way. */
export function validateHitRequest(request: HitRequest): number {
  const cost = request.cost ?? 1;
  if (!Number.isSafeInteger(cost) || cost < 0) {
    throw new TypeError(`rate-limit cost must be a non-negative integer, got ${String(cost)}`);
  }
  if (request.nowMs !== undefined && !Number.isFinite(request.nowMs)) {
    throw new TypeError('rate-limit nowMs must be a finite number');
  }
  for (const counter of request.counters) {
    if (!Number.isSafeInteger(counter.limit) || counter.limit < 0) {
      throw new TypeError(`rate-limit limit must be a non-negative integer, got ${String(counter.limit)}`);
    }
    if (!Number.isSafeInteger(counter.windowMs) || counter.windowMs <= 0) {
      throw new TypeError(`rate-limit window must be a positive integer of ms, got ${String(counter.windowMs)}`);
    }
  }
  return cost;
}

/** Among exceeded counters, the one whose window ends last (first on ties): it decides Retry-After. */
export function decidingIndex(states: readonly CounterState[]): number {
  let chosen = -1;
  for (let index = 0; index < states.length; index++) {
    const state = states[index] as CounterState;
    if (!state.exceeded) continue;
    if (chosen === -1 || state.resetMs > (states[chosen] as CounterState).resetMs) chosen = index;
  }
  return chosen;
}

/** Rejects debits no store can honour; shared so every store fails the same way. */
export function validateDebitRequest(request: DebitRequest): void {
  if (request.nowMs !== undefined && !Number.isFinite(request.nowMs)) {
    throw new TypeError('debit nowMs must be a finite number');
  }
  for (const counter of request.counters) {
    if (!Number.isSafeInteger(counter.limit) || counter.limit < 0) {
      throw new TypeError(`debit limit must be a non-negative integer, got ${String(counter.limit)}`);
    }
    if (!Number.isSafeInteger(counter.windowMs) || counter.windowMs <= 0) {
      throw new TypeError(`debit window must be a positive integer of ms, got ${String(counter.windowMs)}`);
    }
    if (!Number.isSafeInteger(counter.cost) || counter.cost < 0) {
      throw new TypeError(`debit cost must be a non-negative integer, got ${String(counter.cost)}`);
    }
    const release = counter.release;
    if (release !== undefined) {
      if (request.ifRoom === true) throw new TypeError('a debit with ifRoom cannot release units');
      if (!Number.isSafeInteger(release.units) || release.units < 0 || !Number.isSafeInteger(release.windowStartMs)) {
        throw new TypeError('debit release needs whole, non-negative units and a window start in ms');
      }
    }
  }
}
