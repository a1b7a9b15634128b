// Shared counting store on a Redis server, so every replica spends from the same budgets.
// One Check = one EVALSHA of the script below (ioredis sends EVAL the first time on each connection):
// Redis runs a script atomically, so the test of all counters and the spend on all of them cannot
// interleave with another replica's Check. Windows are timed by the Redis server's clock (TIME) unless
// the store is built with `clock: 'caller'`, so replicas with skewed clocks still agree.
//
// Never blocks a caller past its deadline: no offline queue (a Check while disconnected fails at once),
// a per-command timeout, no retries of a sent Check (a retried spend could count twice), and reconnection
// in the background with capped backoff. docs/rate-limits.md describes the algorithm and key layout.

import { createHash } from 'node:crypto';
import { Redis } from './ioredis.js';
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
  type RateLimitStoreUnavailableReason,
} from './store.js';

export const DEFAULT_REDIS_KEY_PREFIX = 'egress-authz:rl:';

export interface RedisRateLimitStoreOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// — never logged, never put in errors. */
  readonly url: string;
  /** Prefix of every key (default "egress-authz:rl:"); use one per deployment sharing a Redis. */
  readonly keyPrefix?: string;
  /** A Check not answered within this many ms fails with reason 'timeout' (default 50). */
  readonly commandTimeoutMs?: number;
  /** Give up one connection attempt after this many ms (default 1000); reconnection continues. */
  readonly connectTimeoutMs?: number;
  /** Whose clock times windows: the Redis server's (default; replicas may be skewed) or `HitRequest.nowMs`. */
  readonly clock?: 'redis' | 'caller';
  /** Background reconnection backoff: doubles from `initialDelayMs` (default 50) up to `maxDelayMs` (default 2000). */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
}

export type RedisStoreState = 'up' | 'down';

// Both scripts start alike: effects replication (scripts that call TIME must replicate effects, not the
// script), and `now` in ms from ARGV[2], or from the Redis server's clock when ARGV[2] is "" (the default:
// one clock for every replica).
const SCRIPT_PRELUDE = `if redis.replicate_commands then redis.replicate_commands() end
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[2])
end
`;

// KEYS[i]: one hash per counter window, fields c (units spent) and s (window start, ms).
// ARGV[1]: cost; ARGV[2]: now in ms, or "" for the server clock; then ARGV[1+2i], ARGV[2+2i]: limit, window ms.
// Reply: allowed, then per counter: units spent in its window, ms until the window ends (-1: no window), exceeded.
const HIT_SCRIPT = `
${SCRIPT_PRELUDE}local cost = tonumber(ARGV[1])
local required = cost
if required < 1 then required = 1 end
local n = #KEYS
local used, starts, exceeded, pending = {}, {}, {}, {}
local allowed = 1
for i = 1, n do
  local key = KEYS[i]
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local fields = redis.call('HMGET', key, 'c', 's')
  local c, s = tonumber(fields[1]), tonumber(fields[2])
  if c == nil or s == nil or now >= s + window then
    c = 0
    s = false
  end
  used[i] = c
  starts[i] = s
  local p = pending[key] or 0
  if c + p + required > limit then
    exceeded[i] = 1
    allowed = 0
  else
    exceeded[i] = 0
  end
  pending[key] = p + cost
end
if allowed == 1 and cost > 0 then
  local opened = {}
  for i = 1, n do
    local key = KEYS[i]
    if starts[i] == false then
      if opened[key] == nil then
        redis.call('HSET', key, 'c', cost, 's', now)
        redis.call('PEXPIRE', key, tonumber(ARGV[2 + 2 * i]))
        opened[key] = true
      else
        redis.call('HINCRBY', key, 'c', cost)
      end
      starts[i] = now
      used[i] = 0
    else
      redis.call('HINCRBY', key, 'c', cost)
    end
  end
  for i = 1, n do
    used[i] = used[i] + pending[KEYS[i]]
  end
end
local reply = { allowed }
for i = 1, n do
  local window = tonumber(ARGV[2 + 2 * i])
  local reset = -1
  if starts[i] ~= false then
    reset = starts[i] + window - now
    if reset < 0 then reset = 0 end
    if reset > window then reset = window end
  end
  reply[#reply + 1] = used[i]
  reply[#reply + 1] = reset
  reply[#reply + 1] = exceeded[i]
end
return reply
`;

const HIT_COMMAND = 'egressAuthzRateLimitHit';

// Token-budget debits (store.ts DebitRequest), same key layout and window rules as HIT_SCRIPT.
// KEYS[i]: one hash per counter window. ARGV[1]: "1" for ifRoom (reservation), else "0"; ARGV[2]: now in ms or
// "" for the server clock; then per counter i, at base = 2 + 5 * (i - 1): limit, window ms, cost, release
// units, release window start ("" for no release).
// Reply: allowed, then per counter: units in its window, ms until the window ends (-1: no window), refused
// (ifRoom only), window start (-1: no window).
const DEBIT_SCRIPT = `
${SCRIPT_PRELUDE}local ifRoom = ARGV[1] == '1'
local n = #KEYS
local state = {}
local function load(key, window)
  local st = state[key]
  if st == nil then
    local fields = redis.call('HMGET', key, 'c', 's')
    local c, s = tonumber(fields[1]), tonumber(fields[2])
    if c == nil or s == nil or now >= s + window then
      c = 0
      s = false
    end
    st = { c = c, s = s, dirty = false, opened = false, window = window }
    state[key] = st
  end
  return st
end
local allowed = 1
local refused = {}
if ifRoom then
  local pending = {}
  for i = 1, n do
    local base = 2 + 5 * (i - 1)
    local limit = tonumber(ARGV[base + 1])
    local cost = tonumber(ARGV[base + 3])
    local st = load(KEYS[i], tonumber(ARGV[base + 2]))
    local p = pending[KEYS[i]] or 0
    local required = cost
    if required < 1 then required = 1 end
    if st.c + p + required > limit then
      refused[i] = 1
      allowed = 0
    else
      refused[i] = 0
    end
    pending[KEYS[i]] = p + cost
  end
end
if allowed == 1 then
  for i = 1, n do
    local base = 2 + 5 * (i - 1)
    local cost = tonumber(ARGV[base + 3])
    local st = load(KEYS[i], tonumber(ARGV[base + 2]))
    if ARGV[base + 5] ~= '' and st.s ~= false and st.s == tonumber(ARGV[base + 5]) then
      local after = st.c - tonumber(ARGV[base + 4])
      if after < 0 then after = 0 end
      if after ~= st.c then
        st.c = after
        st.dirty = true
      end
    end
    if cost > 0 then
      if st.s == false then
        st.s = now
        st.c = 0
        st.opened = true
      end
      st.c = st.c + cost
      st.dirty = true
    end
  end
  for key, st in pairs(state) do
    if st.dirty then
      redis.call('HSET', key, 'c', st.c, 's', st.s)
      if st.opened then redis.call('PEXPIRE', key, st.window) end
    end
  end
end
local reply = { allowed }
for i = 1, n do
  local window = tonumber(ARGV[2 + 5 * (i - 1) + 2])
  local st = state[KEYS[i]] or load(KEYS[i], window)
  local reset = -1
  local start = -1
  if st.s ~= false then
    start = st.s
    reset = st.s + window - now
    if reset < 0 then reset = 0 end
    if reset > window then reset = window end
  end
  reply[#reply + 1] = st.c
  reply[#reply + 1] = reset
  reply[#reply + 1] = refused[i] or 0
  reply[#reply + 1] = start
end
return reply
`;

const DEBIT_COMMAND = 'egressAuthzBudgetDebit';

type ScriptedRedis = Redis & {
  [DEBIT_COMMAND](numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown>;
  [HIT_COMMAND](numberOfKeys: number, ...keysAndArgs: Array<string | number>): Promise<unknown>;
};

/** The Redis key of one counter window: bounded length, and no usernames or other counter values in key names. */
export function redisKeyOf(key: string, windowMs: number, keyPrefix: string = DEFAULT_REDIS_KEY_PREFIX): string {
  const digest = createHash('sha256').update(`${windowMs}\u0000${key}`).digest('hex');
  return keyPrefix + digest.slice(0, 32);
}

export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const;
  private readonly redis: ScriptedRedis;
  private readonly keyPrefix: string;
  private readonly useCallerClock: boolean;
  private readonly listeners = new Set<(state: RedisStoreState) => void>();
  private state: RedisStoreState | 'connecting' = 'connecting';
  private closed = false;

  constructor(options: RedisRateLimitStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    this.useCallerClock = options.clock === 'caller';
    const initialDelayMs = options.reconnect?.initialDelayMs ?? 50;
    const maxDelayMs = options.reconnect?.maxDelayMs ?? 2000;
    const redis = new Redis(options.url, {
      commandTimeout: options.commandTimeoutMs ?? 50,
      connectTimeout: options.connectTimeoutMs ?? 1000,
      enableOfflineQueue: false,
      // A Check lost with its connection is failed, never re-sent: it may already have spent.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Never gives up; the jitter keeps replicas from reconnecting in lockstep after a Redis restart.
      retryStrategy: (attempt) =>
        Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 16)) + Math.floor(Math.random() * initialDelayMs),
      connectionName: 'egress-authz-ratelimit',
      lazyConnect: false,
    }) as ScriptedRedis;
    redis.defineCommand(HIT_COMMAND, { lua: HIT_SCRIPT });
    redis.defineCommand(DEBIT_COMMAND, { lua: DEBIT_SCRIPT });
    redis.on('ready', () => this.setState('up'));
    redis.on('close', () => this.setState('down'));
    // Without a listener ioredis prints every connection error; outages are reported via onStateChange.
    redis.on('error', () => undefined);
    this.redis = redis;
  }

  /** Calls `listener` on each transition between 'up' and 'down' (once per outage, not per Check). */
  onStateChange(listener: (state: RedisStoreState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** 'connecting' until the first connection succeeds or fails. */
  get currentState(): RedisStoreState | 'connecting' {
    return this.state;
  }

  /** Resolves once connected (e.g. at startup); rejects after `timeoutMs` without touching the connection. */
  waitUntilUp(timeoutMs = 5000): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new RateLimitStoreUnavailableError('not-connected', `redis not reachable within ${timeoutMs} ms`));
      }, timeoutMs);
      const unsubscribe = this.onStateChange((state) => {
        if (state !== 'up') return;
        clearTimeout(timer);
        unsubscribe();
        resolve();
      });
    });
  }

  async hit(request: HitRequest): Promise<HitResult> {
    if (this.closed) throw new RateLimitStoreUnavailableError('closed', 'redis store closed');
    const cost = validateHitRequest(request);
    const counters = request.counters;
    if (counters.length === 0) return { allowed: true, counters: [] };
    if (this.redis.status !== 'ready') throw new RateLimitStoreUnavailableError('not-connected', 'redis not connected');

    const keysAndArgs: Array<string | number> = counters.map((counter) =>
      redisKeyOf(counter.key, counter.windowMs, this.keyPrefix),
    );
    keysAndArgs.push(cost, this.useCallerClock ? Math.floor(request.nowMs ?? Date.now()) : '');
    for (const counter of counters) keysAndArgs.push(counter.limit, counter.windowMs);

    return toHitResult(await this.runScript(HIT_COMMAND, counters.length, keysAndArgs), request);
  }

  /** Token-budget accounting: one EVALSHA, atomic like `hit` (store.ts DebitRequest). */
  async debit(request: DebitRequest): Promise<DebitResult> {
    if (this.closed) throw new RateLimitStoreUnavailableError('closed', 'redis store closed');
    validateDebitRequest(request);
    const counters = request.counters;
    if (counters.length === 0) return { allowed: true, counters: [] };
    if (this.redis.status !== 'ready') throw new RateLimitStoreUnavailableError('not-connected', 'redis not connected');

    const keysAndArgs: Array<string | number> = counters.map((counter) =>
      redisKeyOf(counter.key, counter.windowMs, this.keyPrefix),
    );
    keysAndArgs.push(request.ifRoom === true ? '1' : '0', this.useCallerClock ? Math.floor(request.nowMs ?? Date.now()) : '');
    for (const counter of counters) {
      keysAndArgs.push(
        counter.limit,
        counter.windowMs,
        counter.cost,
        counter.release?.units ?? 0,
        counter.release === undefined ? '' : counter.release.windowStartMs,
      );
    }

    return toDebitResult(await this.runScript(DEBIT_COMMAND, counters.length, keysAndArgs), request);
  }

  /** One EVALSHA; a timeout marks the store down (the connection may be alive but silent), a reply up. */
  private async runScript(
    command: typeof HIT_COMMAND | typeof DEBIT_COMMAND,
    numKeys: number,
    keysAndArgs: Array<string | number>,
  ): Promise<unknown> {
    let reply: unknown;
    try {
      reply = await this.redis[command](numKeys, ...keysAndArgs);
    } catch (error) {
      const unavailable = toUnavailableError(error);
      if (unavailable.reason === 'timeout') this.setState('down');
      throw unavailable;
    }
    this.setState('up');
    return reply;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    if (this.redis.status === 'ready') {
      try {
        await this.redis.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.redis.disconnect();
  }

  private setState(next: RedisStoreState): void {
    if (this.state === next || this.closed) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener(next);
  }
}

function toDebitResult(reply: unknown, request: DebitRequest): DebitResult {
  const counters = request.counters;
  if (!Array.isArray(reply) || reply.length !== 1 + 4 * counters.length || !reply.every((value) => typeof value === 'number')) {
    throw new RateLimitStoreUnavailableError('error', 'unexpected reply from the budget script');
  }
  const values = reply as number[];
  const allowed = values[0] === 1;
  const ifRoom = request.ifRoom === true;
  const states: DebitState[] = counters.map((counter, index) => {
    const used = values[1 + 4 * index] as number;
    const resetMs = values[2 + 4 * index] as number;
    const start = values[4 + 4 * index] as number;
    return {
      limit: counter.limit,
      windowMs: counter.windowMs,
      used,
      remaining: Math.max(0, counter.limit - used),
      resetMs: resetMs < 0 ? counter.windowMs : resetMs,
      exceeded: ifRoom ? values[3 + 4 * index] === 1 : used >= counter.limit,
      windowStartMs: start < 0 ? undefined : start,
    };
  });
  return allowed ? { allowed, counters: states } : { allowed, counters: states, exceededIndex: decidingIndex(states) };
}

function toHitResult(reply: unknown, request: HitRequest): HitResult {
  const counters = request.counters;
  if (!Array.isArray(reply) || reply.length !== 1 + 3 * counters.length || !reply.every((value) => typeof value === 'number')) {
    throw new RateLimitStoreUnavailableError('error', 'unexpected reply from the rate-limit script');
  }
  const values = reply as number[];
  const allowed = values[0] === 1;
  const states: CounterState[] = counters.map((counter, index) => {
    const used = values[1 + 3 * index] as number;
    const resetMs = values[2 + 3 * index] as number;
    return {
      limit: counter.limit,
      windowMs: counter.windowMs,
      remaining: Math.max(0, counter.limit - used),
      resetMs: resetMs < 0 ? counter.windowMs : resetMs,
      exceeded: values[3 + 3 * index] === 1,
    };
  });
  return allowed ? { allowed, counters: states } : { allowed, counters: states, exceededIndex: decidingIndex(states) };
}

/** Maps ioredis failures to a reason; the detail is fixed text or a Redis error code, never a URL or key. */
function toUnavailableError(error: unknown): RateLimitStoreUnavailableError {
  if (error instanceof RateLimitStoreUnavailableError) return error;
  const message = error instanceof Error ? error.message : '';
  const name = error instanceof Error ? error.name : '';
  let reason: RateLimitStoreUnavailableReason = 'error';
  let detail = 'redis command failed';
  if (message === 'Command timed out') {
    reason = 'timeout';
    detail = 'redis did not answer in time (the Check may still have been counted)';
  } else if (
    name === 'MaxRetriesPerRequestError' ||
    message.startsWith("Stream isn't writeable") ||
    message === 'Connection is closed.'
  ) {
    reason = 'not-connected';
    detail = 'redis connection lost';
  } else if (name === 'ReplyError') {
    const code = /^[A-Z]+/.exec(message)?.[0];
    detail = code === undefined ? 'redis replied with an error' : `redis replied ${code}`;
  }
  return new RateLimitStoreUnavailableError(reason, detail);
}
