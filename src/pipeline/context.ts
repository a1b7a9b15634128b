// Per-Check state shared by the stages of one policy's pipeline.
import type { RequestView } from '../envoy/request-view.js';
import { CelAuth, CelPeer, CelRequest } from '../cel/environment.js';
import type { Activation } from '../cel/compile.js';
import type { Decision, Evaluator } from './decision.js';

export interface TraceStep {
  readonly evaluator: Evaluator;
  readonly name: string;
  readonly result: string;
  readonly durationMs: number;
  readonly expression?: string;
  readonly values?: Record<string, unknown>;
}

export class CheckContext {
  readonly activation: Activation;
  readonly auth: CelAuth;
  readonly variables: Record<string, unknown> = {};
  /** The credential the identity stage accepted (e.g. the SA token): for Vault login, never logged. */
  credential: string | undefined;
  /** A short, non-secret identity label for logs and metrics-free decision logs (username / principal). */
  identityLabel: string | undefined;
  /** Secret strings this Check handled; the decision log scrubs them from every field. */
  readonly secrets: string[] = [];
  /** Filled only for explain (off on the hot path). */
  readonly trace: TraceStep[] | undefined;

  constructor(
    readonly view: RequestView,
    readonly deadline: number,
    readonly signal: AbortSignal,
    objectView: (() => unknown) | undefined,
    trace = false,
  ) {
    this.auth = new CelAuth(null, {}, {});
    const v = view;
    const request = new CelRequest(
      v.requestId || v.streamId,
      v.time,
      v.method,
      v.scheme,
      v.host,
      BigInt(v.hostPort),
      v.rawPath,
      v.path,
      v.query,
      v.headers,
      v.body,
      BigInt(v.size),
      v.protocol,
    );
    const activation: Activation = {
      request,
      source: peer(v.source),
      destination: peer(v.destination),
      context: v.contextExtensions,
      metadata: v.metadataContext,
      auth: this.auth,
      variables: this.variables,
    };
    if (objectView) {
      // Only Kyverno policies read `object`; build it lazily once per Check.
      let cached: unknown;
      Object.defineProperty(activation, 'object', {
        enumerable: true,
        get: () => (cached ??= objectView()),
      });
    }
    this.activation = activation;
    this.trace = trace ? [] : undefined;
  }

  remainingMs(now = Date.now()): number {
    return this.deadline - now;
  }

  addTrace(step: TraceStep): void {
    this.trace?.push(step);
  }
}

function peer(p: RequestView['source']): CelPeer {
  return new CelPeer(p.address, BigInt(p.port), p.principal, p.service, p.labels, p.certificate);
}

/** One step of a policy's pipeline. `undefined` means "go on to the next stage". */
export interface Stage {
  readonly evaluator: Evaluator;
  readonly name: string;
  run(ctx: CheckContext): Decision | undefined | Promise<Decision | undefined>;
}
