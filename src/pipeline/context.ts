// Per-Check state shared by the stages of one policy's pipeline.
import type { RequestView } from '../envoy/request-view.js';
import { CelAuth, CelPeer, CelRequest } from '../cel/environment.js';
import type { Activation } from '../cel/compile.js';
import type { Decision, Evaluator } from './decision.js';
import type { SourcePos } from '../policy/diagnostics.js';

export interface TraceStep {
  readonly evaluator: Evaluator;
  readonly name: string;
  readonly result: string;
  readonly durationMs: number;
  readonly expression?: string;
  readonly values?: Record<string, unknown>;
  /** Where the expression is written (file:line:col), for explain output. */
  readonly pos?: SourcePos;
}

/**
 * Test-only results that replace a stage's backends (policy tests and `explain --policies`; never set by the
 * server): with `identity` the identity stage does not run; with `metadata` no metadata source runs and
 * auth.metadata.<name> holds the given values (sources not named stay absent, as if they had failed).
 */
export interface StandIns {
  readonly identity?: unknown;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export class CheckContext {
  readonly activation: Activation;
  readonly auth: CelAuth;
  readonly variables: Record<string, unknown> = {};
  /** The credential the identity stage accepted (e.g. the SA token): for Vault login, never logged. */
  credential: string | undefined;
  /** Whether `credential` is a Kubernetes ServiceAccount token (TokenReview, or jwt in Kubernetes mode). */
  credentialIsServiceAccountToken = false;
  /** A short, non-secret identity label for logs and metrics-free decision logs (username / principal). */
  identityLabel: string | undefined;
  /** Secret strings this Check handled; the decision log scrubs them from every field. */
  readonly secrets: string[] = [];
  /** Filled only for explain (off on the hot path). */
  readonly trace: TraceStep[] | undefined;

  constructor(
    readonly view: RequestView,
    readonly deadline: number,
    /** Where the deadline's abort signal comes from, asked only by a stage that waits (see DeadlineBucket). */
    private readonly signalSource: { readonly signal: AbortSignal },
    objectView: ((view: RequestView) => unknown) | undefined,
    trace = false,
    readonly standIns?: StandIns,
    /**
     * A background re-evaluation after the Check was answered (see Authorizer): it only fills caches, so
     * only the read-only stages (identity, metadata) run; nothing is counted, logged or answered.
     */
    readonly background = false,
  ) {
    this.auth = new CelAuth(null, {}, {});
    const v = view;
    const request = new CelRequest(
      v.requestId || v.streamId,
      v.time,
      v.method,
      v.scheme,
      v.host,
      smallBigInt(v.hostPort),
      v.rawPath,
      v.path,
      v.query,
      v.headers,
      v.body,
      smallBigInt(v.size),
      v.protocol,
    );
    // One object of a fixed class per Check: `object` (only Kyverno policies read it) is a getter on the
    // prototype, built on first read; defining it per Check turned every activation into a slow dictionary.
    const activation = new CheckActivation(request, peer(v.source), peer(v.destination), v.contextExtensions, v.metadataContext, this.auth, this.variables, view, objectView);
    this.activation = activation as unknown as Activation;
    this.trace = trace ? [] : undefined;
  }

  /** Aborted at the deadline. */
  get signal(): AbortSignal {
    return this.signalSource.signal;
  }

  /** Backend loads this Check stopped waiting for at its deadline; they go on and fill their caches. */
  abandonedLoads: Promise<unknown>[] | undefined;

  /** A stage gave up waiting for `load` (deadline): the authorizer may finish the work in the background. */
  gaveUpOn(load: Promise<unknown>): void {
    (this.abandonedLoads ??= []).push(load);
  }

  remainingMs(now = Date.now()): number {
    return this.deadline - now;
  }

  addTrace(step: TraceStep): void {
    this.trace?.push(step);
  }

  /** Applies a test stand-in in place of `stage`; true when the stage must not run. */
  useStandIn(stage: Stage): boolean {
    const s = this.standIns;
    if (s?.identity !== undefined && stage.evaluator === 'identity') {
      (this.auth as { identity: unknown }).identity = s.identity;
      this.identityLabel = standInLabel(s.identity);
      this.addTrace({ evaluator: 'identity', name: stage.name, result: `stand-in: ${this.identityLabel}`, durationMs: 0 });
      return true;
    }
    if (s?.metadata !== undefined && stage.evaluator === 'metadata') {
      Object.assign(this.auth.metadata, s.metadata);
      const names = Object.keys(s.metadata);
      this.addTrace({ evaluator: 'metadata', name: stage.name, result: `stand-in: ${names.join(', ') || '(none)'}`, durationMs: 0 });
      return true;
    }
    return false;
  }
}

function standInLabel(identity: unknown): string {
  const o = (identity ?? {}) as { username?: unknown; principal?: unknown; user?: { username?: unknown } };
  const label = o.username ?? o.user?.username ?? o.principal;
  return typeof label === 'string' && label ? label : 'stand-in identity';
}

/** The CEL variables of one Check (see CEL_VARIABLES in src/cel/environment.ts). */
class CheckActivation {
  private objectValue: unknown;

  constructor(
    readonly request: CelRequest,
    readonly source: CelPeer,
    readonly destination: CelPeer,
    readonly context: Readonly<Record<string, string>>,
    readonly metadata: Readonly<Record<string, unknown>>,
    readonly auth: CelAuth,
    readonly variables: Record<string, unknown>,
    private readonly view: RequestView,
    private readonly objectView: ((view: RequestView) => unknown) | undefined,
  ) {}

  get object(): unknown {
    if (this.objectValue === undefined && this.objectView) this.objectValue = this.objectView(this.view);
    return this.objectValue;
  }
}

function peer(p: RequestView['source']): CelPeer {
  return new CelPeer(p.address, smallBigInt(p.port), p.principal, p.service, p.labels, p.certificate);
}

/** Ports (and most sizes) are below 65,536: their BigInts are made once and shared (four per Check otherwise). */
const SMALL_BIGINTS: bigint[] = [];
function smallBigInt(n: number): bigint {
  if (!(n >= 0 && n < 65_536 && Number.isInteger(n))) return BigInt(n);
  return (SMALL_BIGINTS[n] ??= BigInt(n));
}

/** One step of a policy's pipeline. `undefined` means "go on to the next stage". */
export interface Stage {
  readonly evaluator: Evaluator;
  readonly name: string;
  run(ctx: CheckContext): Decision | undefined | Promise<Decision | undefined>;
}
