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

  async close(): Promise<void> {
    for (const c of this.closers.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // closing is best effort during shutdown
      }
    }
  }
}
