// Micro-benchmark of the rate-limit stores: `npx tsx bench/ratelimit-store.ts`.
// Uses REDIS_URL when set, otherwise starts a throwaway local redis-server.
// Each Check tests two rates (per second, per minute) of one of 1 000 identities, like a policy with a
// burst and a sustained limit; limits are high so every Check spends (the write path).

import { MemoryRateLimitStore } from '../src/ratelimit/memory-store.js';
import { RedisRateLimitStore } from '../src/ratelimit/redis-store.js';
import type { HitRequest, RateLimitStore } from '../src/ratelimit/store.js';
import { startRedisServer, type RedisServerHandle } from '../test/support/redis-server.js';

const IDENTITIES = 1_000;
const requests: HitRequest[] = Array.from({ length: IDENTITIES }, (_, i) => {
  const key = `per-workload/system:serviceaccount:team-${i}:default`;
  return {
    counters: [
      { key, limit: 1_000_000_000, windowMs: 1_000 },
      { key, limit: 1_000_000_000, windowMs: 60_000 },
    ],
  };
});

async function measure(label: string, store: RateLimitStore, total: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const request = requests[next++ % IDENTITIES] as HitRequest;
      await store.hit(request);
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const perSecond = Math.round(total / seconds);
  const meanLatencyUs = ((seconds / total) * concurrency * 1e6).toFixed(1);
  console.log(`${label.padEnd(34)} ${String(perSecond).padStart(9)} hits/s   (~${meanLatencyUs} µs per hit in flight)`);
}

const memory = new MemoryRateLimitStore();
await measure('memory, sequential (warm-up)', memory, 50_000, 1);
await measure('memory, sequential', memory, 500_000, 1);
await memory.close();

let server: RedisServerHandle | undefined;
const url = process.env.REDIS_URL ?? (server = await startRedisServer()).url;
const redis = new RedisRateLimitStore({ url, keyPrefix: 'egress-authz:bench:', commandTimeoutMs: 5_000 });
try {
  await redis.waitUntilUp();
  await measure('redis, sequential (warm-up)', redis, 2_000, 1);
  await measure('redis, sequential', redis, 20_000, 1);
  await measure('redis, 16 in flight', redis, 100_000, 16);
  await measure('redis, 64 in flight', redis, 100_000, 64);
} finally {
  await redis.close();
  await server?.close();
}
