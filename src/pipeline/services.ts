// Long-lived runtime dependencies shared by every compiled policy: they survive policy reloads, so caches
// and backend connections are not rebuilt when a policy file changes.
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';

export interface RuntimeConfig {
  /** Budget for one Check, below Envoy's 200 ms default gRPC timeout. */
  readonly checkDeadlineMs: number;
  readonly kubeconfig?: string;
  readonly redisUrl?: string;
  readonly vaultAddr?: string;
  /** Answer for requests no policy governs. */
  readonly defaultDecision: 'deny' | 'allow';
}

export class Services {
  private readonly singletons = new Map<string, unknown>();
  private readonly closers: Array<() => Promise<void> | void> = [];
  private readonly warmups: Array<Promise<unknown>> = [];
  private closed = false;

  constructor(
    readonly config: RuntimeConfig,
    readonly logger: Logger,
    readonly metrics: Metrics,
  ) {}

  /** One shared instance per key (a Kubernetes client, a Redis store, a cache) across all policies. */
  singleton<T>(key: string, create: () => T, close?: (value: T) => Promise<void> | void): T {
    if (this.singletons.has(key)) return this.singletons.get(key) as T;
    const value = create();
    this.singletons.set(key, value);
    if (close) this.closers.push(() => close(value));
    return value;
  }

  /**
   * Registers start-up work a policy needs before it can answer quickly (loading a client library, a first
   * key fetch). Work starts after the current policy load returns, so a load that is only checked (lint)
   * and closed at once never starts it. Failures are the work's own business: they never reject here.
   */
  warmUp(start: () => Promise<unknown>): void {
    const work = new Promise<void>((resolve) => setImmediate(resolve)).then(() => (this.closed ? undefined : start()));
    this.warmups.push(work.catch(() => undefined));
  }

  /** Resolves once every warm-up registered so far has settled (readiness can wait on this). */
  async warm(): Promise<void> {
    let seen = 0;
    while (seen < this.warmups.length) {
      const batch = this.warmups.slice(seen);
      seen = this.warmups.length;
      await Promise.all(batch);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.closers.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // closing is best effort during shutdown
      }
    }
  }
}
