// The public keys a `jwt` method verifies against, kept fresh: fetched right after the policy loads, refreshed
// on a timer, and refreshed at once when a token names a key id we do not know (key rotation). Those
// unknown-kid refreshes are rate-limited (a stream of forged kids must not hammer the issuer) and coalesced
// (many Checks waiting on one rotation make one fetch). One store per key source, shared by all policies.
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTHeaderParameters, type FlattenedJWSInput } from 'jose';
import type { Services } from '../pipeline/services.js';
import { warnBackendThrottled } from './backend-log.js';
import { waitWithinDeadline, type WaitingCheck } from '../pipeline/deadline.js';

export interface KeySource {
  /** Identifies the source (URL, CA) so that policies naming the same one share a store. */
  readonly id: string;
  /** For messages: where the keys come from (no secrets). */
  readonly describe: string;
  /** Waits for what the source needs before it can fetch (a client library loading); not timed as a fetch. */
  ready?(): Promise<void>;
  /** Fetches the key set, and the issuer when the source learned it (OIDC discovery). */
  load(signal: AbortSignal): Promise<{ jwks: JSONWebKeySet; issuer?: string }>;
}

export interface JwksStoreOptions {
  /** Timer refresh interval. */
  readonly refreshMs: number;
  /** Minimum time between two refreshes caused by unknown key ids. */
  readonly unknownKidCooldownMs: number;
}

/** The keys cannot be had right now (fetch failed or too slow): the Check answers 503. */
export class KeysUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysUnavailableError';
  }
}

const FETCH_TIMEOUT_MS = 5_000;
export const JWKS_DEFAULT_REFRESH_MS = 10 * 60_000;
export const JWKS_UNKNOWN_KID_COOLDOWN_MS = 10_000;

type LocalKeySet = ReturnType<typeof createLocalJWKSet>;

export class JwksStore {
  private keySet: LocalKeySet | undefined;
  private learnedIssuer: string | undefined;
  private lastError: string | undefined;
  private inflight: Promise<void> | undefined;
  private lastUnknownKidRefresh = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private keySetText: string | undefined;
  /**
   * Changes whenever the key set (or the issuer) changes: verdicts cached under an older generation are
   * never read again, so a key the issuer withdrew stops accepting tokens at the next refresh.
   */
  generation = 0;

  constructor(
    private readonly source: KeySource,
    private readonly services: Services,
    private readonly opts: JwksStoreOptions,
  ) {}

  /** The issuer the source published (discovery), once known. */
  get issuer(): string | undefined {
    return this.learnedIssuer;
  }

  get loaded(): boolean {
    return this.keySet !== undefined;
  }

  /** Starts the timer refresh (the first fetch is a warm-up registered by jwksStoreFor). */
  startTimer(): void {
    this.timer ??= setInterval(() => void this.refresh(), this.opts.refreshMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** One fetch at a time; concurrent callers share it. Never rejects: a failure is kept in lastError. */
  refresh(): Promise<void> {
    this.inflight ??= this.fetchOnce().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchOnce(): Promise<void> {
    try {
      await this.source.ready?.();
      const { jwks, issuer } = await this.services.metrics.timeBackend('jwks', () =>
        this.source.load(AbortSignal.timeout(FETCH_TIMEOUT_MS)),
      );
      if (!jwks || !Array.isArray(jwks.keys)) throw new Error(`${this.source.describe}: not a JWK set`);
      const text = JSON.stringify([jwks, issuer]);
      if (text !== this.keySetText) {
        this.keySetText = text;
        this.generation++;
      }
      this.keySet = createLocalJWKSet(jwks);
      if (issuer !== undefined) this.learnedIssuer = issuer;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      // Keep the last good keys: an issuer briefly down must not invalidate every token.
      warnBackendThrottled(this.services.logger, 'jwks', `key set fetch failed: ${this.lastError}`);
    }
  }

  /** Waits (within the Check's deadline) for the first key set; throws KeysUnavailableError otherwise. */
  async ensureLoaded(ctx: WaitingCheck): Promise<void> {
    if (this.keySet) return;
    const waited = await waitWithinDeadline(this.refresh(), ctx);
    if (!this.keySet) {
      throw new KeysUnavailableError(
        waited.done ? `keys from ${this.source.describe} unavailable: ${this.lastError ?? 'no key set'}` : `keys from ${this.source.describe} not loaded within the deadline`,
      );
    }
  }

  /**
   * The key for a token's protected header (a jose key-resolver). An unknown kid triggers one refresh unless
   * one happened within the cooldown; a kid still unknown after that is jose's JWKSNoMatchingKey (→ 401).
   */
  async key(header: JWTHeaderParameters, token: FlattenedJWSInput, ctx: WaitingCheck) {
    await this.ensureLoaded(ctx);
    try {
      return await this.keySet!(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      const now = Date.now();
      if (!this.inflight) {
        if (now - this.lastUnknownKidRefresh < this.opts.unknownKidCooldownMs) throw err;
        this.lastUnknownKidRefresh = now;
      }
      const waited = await waitWithinDeadline(this.refresh(), ctx);
      if (!waited.done) throw new KeysUnavailableError(`key refresh from ${this.source.describe} did not finish within the deadline`);
      if (this.lastError) throw new KeysUnavailableError(`key refresh from ${this.source.describe} failed: ${this.lastError}`);
      return await this.keySet!(header, token);
    }
  }
}

/** The shared store for a key source: created once, first fetch right after the policy load, then a timer. */
export function jwksStoreFor(services: Services, source: KeySource, opts: JwksStoreOptions): JwksStore {
  return services.singleton(
    `identity:jwks:${source.id}`,
    () => {
      const store = new JwksStore(source, services, opts);
      services.warmUp(async () => {
        await store.refresh();
        if (!services.isClosed) store.startTimer();
      });
      return store;
    },
    (store) => store.close(),
  );
}
