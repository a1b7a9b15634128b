// In-process counting store: exact for one replica, shared by nothing. Each counter is a fixed window
// anchored at its first spend. Memory stays bounded without per-key timers: every hit advances a sweep
// cursor over a few entries (dropping ended windows), and past `maxKeys` the least recently used
// counter is evicted (which refunds that counter's budget: size the cap above the active key count).

import { hashKey } from '../cache/cache.js';
import {
  decidingIndex,
  RateLimitStoreUnavailableError,
  validateDebitRequest,
  validateHitRequest,
  type CounterState,
  type DebitRequest,
  type DebitResult,
  type DebitState,
  type HitRequest,
  type HitResult,
  type RateLimitStore,
} from './store.js';

export interface MemoryRateLimitStoreOptions {
  /** Most counters kept at once (default 100 000); beyond it the least recently used one is evicted. */
  readonly maxKeys?: number;
  /** Clock in ms since the epoch (default Date.now); a request's `nowMs` overrides it. */
  readonly now?: () => number;
}

interface OpenWindow {
  count: number;
  startMs: number;
  readonly windowMs: number;
  /** When the window last took its place in the LRU order (see openWindow). */
  placed: number;
}

const DEFAULT_MAX_KEYS = 100_000;
/** Entries the sweep cursor examines per hit on top of one per counter (so sweeping outpaces inserts). */
const SWEEP_EXTRA_PER_HIT = 2;

export class MemoryRateLimitStore implements RateLimitStore {
  readonly kind = 'memory' as const;
  private readonly windows = new Map<string, OpenWindow>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  private sweepCursor: Iterator<[string, OpenWindow]> | undefined;
  private evictedCount = 0;
  private closed = false;
  /** Counts placements in the LRU order (inserts and moves to the end). */
  private placements = 0;

  constructor(options: MemoryRateLimitStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new TypeError('maxKeys must be a positive integer');
    this.maxKeys = maxKeys;
    this.now = options.now ?? Date.now;
  }

  /** Counters currently held (open windows plus ended ones the sweep has not reached yet). */
  get size(): number {
    return this.windows.size;
  }

  /** Live counters dropped because `maxKeys` was reached, since the store was created. */
  get evictions(): number {
    return this.evictedCount;
  }

  hit(request: HitRequest): Promise<HitResult> {
    try {
      return Promise.resolve(this.hitNow(request));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  debit(request: DebitRequest): Promise<DebitResult> {
    try {
      return Promise.resolve(this.debitNow(request));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): Promise<void> {
    this.closed = true;
    this.windows.clear();
    this.sweepCursor = undefined;
    return Promise.resolve();
  }

  hitNow(request: HitRequest): HitResult {
    if (this.closed) throw new RateLimitStoreUnavailableError('closed', 'memory store closed');
    const cost = validateHitRequest(request);
    const nowMs = request.nowMs ?? this.now();
    const counters = request.counters;
    this.sweep(nowMs, counters.length + SWEEP_EXTRA_PER_HIT);

    // Phase 1: test every counter. The same storage key may appear twice (two rates sharing a counter);
    // `pending` makes the second test see the first one's spend, exactly as the Redis script does.
    const storageKeys = counters.map((counter) => storageKeyOf(counter.key, counter.windowMs));
    const open: Array<OpenWindow | undefined> = [];
    const pending = new Map<string, number>();
    const required = Math.max(cost, 1);
    let allowed = true;
    const exceeded: boolean[] = [];
    for (let index = 0; index < counters.length; index++) {
      const counter = counters[index] as (typeof counters)[number];
      const storageKey = storageKeys[index] as string;
      const window = this.openWindow(storageKey, nowMs);
      open.push(window);
      const alreadyPending = pending.get(storageKey) ?? 0;
      const over = (window?.count ?? 0) + alreadyPending + required > counter.limit;
      exceeded.push(over);
      if (over) allowed = false;
      pending.set(storageKey, alreadyPending + cost);
    }

    // Phase 2: spend only if every counter had room.
    if (allowed && cost > 0) {
      for (let index = 0; index < counters.length; index++) {
        const counter = counters[index] as (typeof counters)[number];
        const storageKey = storageKeys[index] as string;
        let window = this.windows.get(storageKey);
        if (window === undefined || !isOpen(window, nowMs)) {
          window = { count: 0, startMs: nowMs, windowMs: counter.windowMs, placed: ++this.placements };
          this.windows.set(storageKey, window);
        }
        window.count += cost;
        open[index] = window;
      }
      this.evictOverflow();
    }

    const states: CounterState[] = counters.map((counter, index) => {
      const window = open[index];
      const used = window?.count ?? 0;
      return {
        limit: counter.limit,
        windowMs: counter.windowMs,
        remaining: Math.max(0, counter.limit - used),
        resetMs: window === undefined ? counter.windowMs : resetMsOf(window, nowMs),
        exceeded: exceeded[index] as boolean,
      };
    });
    return allowed ? { allowed, counters: states } : { allowed, counters: states, exceededIndex: decidingIndex(states) };
  }

  /** Token-budget accounting (store.ts DebitRequest): per-counter costs, reservation with ifRoom, releases. */
  private debitNow(request: DebitRequest): DebitResult {
    if (this.closed) throw new RateLimitStoreUnavailableError('closed', 'memory store closed');
    validateDebitRequest(request);
    const nowMs = request.nowMs ?? this.now();
    const counters = request.counters;
    const ifRoom = request.ifRoom === true;
    this.sweep(nowMs, counters.length + SWEEP_EXTRA_PER_HIT);
    const storageKeys = counters.map((counter) => storageKeyOf(counter.key, counter.windowMs));

    // Phase 1 (reservations only): every counter must have room for its cost, counting earlier listings of
    // the same budget in this call.
    let allowed = true;
    const refused: boolean[] = counters.map(() => false);
    if (ifRoom) {
      const pending = new Map<string, number>();
      for (let index = 0; index < counters.length; index++) {
        const counter = counters[index] as (typeof counters)[number];
        const storageKey = storageKeys[index] as string;
        const window = this.openWindow(storageKey, nowMs);
        const alreadyPending = pending.get(storageKey) ?? 0;
        if ((window?.count ?? 0) + alreadyPending + Math.max(counter.cost, 1) > counter.limit) {
          refused[index] = true;
          allowed = false;
        }
        pending.set(storageKey, alreadyPending + counter.cost);
      }
    }

    // Phase 2: releases, then costs (a counter without an open window opens one when it spends).
    if (allowed) {
      for (let index = 0; index < counters.length; index++) {
        const counter = counters[index] as (typeof counters)[number];
        const storageKey = storageKeys[index] as string;
        let window = this.openWindow(storageKey, nowMs);
        const release = counter.release;
        if (release !== undefined && window !== undefined && window.startMs === release.windowStartMs) {
          window.count = Math.max(0, window.count - release.units);
        }
        if (counter.cost > 0) {
          if (window === undefined) {
            window = { count: 0, startMs: nowMs, windowMs: counter.windowMs, placed: ++this.placements };
            this.windows.set(storageKey, window);
          }
          window.count += counter.cost;
        }
      }
      this.evictOverflow();
    }

    const states: DebitState[] = counters.map((counter, index) => {
      const stored = this.windows.get(storageKeys[index] as string);
      const window = stored !== undefined && isOpen(stored, nowMs) ? stored : undefined;
      const used = window?.count ?? 0;
      return {
        limit: counter.limit,
        windowMs: counter.windowMs,
        used,
        remaining: Math.max(0, counter.limit - used),
        resetMs: window === undefined ? counter.windowMs : resetMsOf(window, nowMs),
        exceeded: ifRoom ? (refused[index] as boolean) : used >= counter.limit,
        windowStartMs: window?.startMs,
      };
    });
    return allowed ? { allowed, counters: states } : { allowed, counters: states, exceededIndex: decidingIndex(states) };
  }

  /** The counter's window if one is open at `nowMs`, kept away from the least-recently-used end. */
  private openWindow(storageKey: string, nowMs: number): OpenWindow | undefined {
    const window = this.windows.get(storageKey);
    if (window === undefined) return undefined;
    if (!isOpen(window, nowMs)) {
      this.windows.delete(storageKey);
      return undefined;
    }
    // Map keeps insertion order: re-inserting makes the map's head the least recently used entry. A window
    // placed within the last maxKeys/2 placements cannot reach the head before it is used again, so only older
    // ones move (as in cache.ts): a delete + set on every hit was a visible share of an in-memory hit.
    if (this.placements - window.placed >= this.maxKeys >> 1) {
      this.windows.delete(storageKey);
      window.placed = ++this.placements;
      this.windows.set(storageKey, window);
    }
    return window;
  }

  private sweep(nowMs: number, budget: number): void {
    for (let examined = 0; examined < budget; examined++) {
      this.sweepCursor ??= this.windows.entries();
      const next = this.sweepCursor.next();
      if (next.done === true) {
        this.sweepCursor = undefined;
        return;
      }
      const [storageKey, window] = next.value;
      if (!isOpen(window, nowMs)) this.windows.delete(storageKey);
    }
  }

  private evictOverflow(): void {
    while (this.windows.size > this.maxKeys) {
      const oldest = this.windows.keys().next();
      if (oldest.done === true) return;
      this.windows.delete(oldest.value);
      this.evictedCount++;
    }
  }
}

/**
 * The stored key: a hash, so a counter's size in memory does not depend on its key (counter values can be long
 * strings, a header may be tens of KB) and `maxKeys` bounds the memory in bytes too. Two rates with the same
 * counter key but different windows are different budgets. The hashes of recent short keys are remembered: a
 * workload's key comes back on each of its Checks, and hashing it every time was most of an in-memory hit's
 * cost. Bounded: the memo starts over when full.
 */
function storageKeyOf(key: string, windowMs: number): string {
  if (key.length > STORAGE_KEY_MEMO_KEY_CHARS) return hashKey(String(windowMs), key);
  const memo = STORAGE_KEYS.get(windowMs);
  let hashed = memo?.get(key);
  if (hashed === undefined) {
    hashed = hashKey(String(windowMs), key);
    let keys = memo;
    if (!keys) STORAGE_KEYS.set(windowMs, (keys = new Map()));
    if (keys.size >= STORAGE_KEY_MEMO_MAX) keys.clear();
    keys.set(key, hashed);
  }
  return hashed;
}

const STORAGE_KEYS = new Map<number, Map<string, string>>();
const STORAGE_KEY_MEMO_MAX = 10_000;
/** Longer keys are hashed every time: the memo holds at most 10,000 × 256 characters per window length. */
const STORAGE_KEY_MEMO_KEY_CHARS = 256;

/** A window is [startMs, startMs + windowMs). A clock that steps back keeps the window open. */
function isOpen(window: OpenWindow, nowMs: number): boolean {
  return nowMs < window.startMs + window.windowMs;
}

function resetMsOf(window: OpenWindow, nowMs: number): number {
  return Math.min(window.windowMs, Math.max(0, window.startMs + window.windowMs - nowMs));
}
