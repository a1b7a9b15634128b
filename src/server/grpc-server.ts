// The gRPC endpoint: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health.
import {
  CHECK_PATH,
  DecodeError,
  HealthCheckRequestType,
  HealthCheckResponseType,
  deserializeCheckRequest,
  serializeCheckResponse,
  type ProtoCheckRequest,
} from '../envoy/codec.js';
import { InvalidCheckRequest, toRequestView } from '../envoy/request.js';
import { toCheckResponse } from '../envoy/response.js';
import type { CheckOutcome } from '../pipeline/authorizer.js';
import type { RequestView } from '../envoy/request-view.js';
import type { MaybePromise } from '../pipeline/maybe-async.js';
import { GrpcStatus, MAX_RECEIVE_MESSAGE_BYTES, startGrpcTransport, type GrpcMethod, type StreamCall, type UnaryReply } from './grpc-transport.js';

/**
 * Answers a Check now (every cache warm) or later; throws or rejects only on a bug (→ INTERNAL).
 * `clientDeadline`: when Envoy stops waiting (epoch ms, its `grpc-timeout`), if it said.
 */
export type CheckHandler = (view: RequestView, clientDeadline: number | undefined) => MaybePromise<CheckOutcome>;

export const SERVING = 1;
export const NOT_SERVING = 2;
export const SERVICE_UNKNOWN = 3;

function safeDeserialize(buf: Buffer): ProtoCheckRequest | DecodeError {
  // A throwing decoder would answer INTERNAL; a malformed CheckRequest is INVALID_ARGUMENT, so errors are values.
  try {
    return deserializeCheckRequest(buf);
  } catch (err) {
    return err instanceof DecodeError ? err : new DecodeError('malformed CheckRequest');
  }
}

interface HealthRequest {
  service?: string;
}
interface HealthResponse {
  status: number;
}

// A health request that does not decode asks for a service nobody has: the answer is NOT_FOUND, not a crash.
function decodeHealthRequest(b: Buffer): HealthRequest {
  try {
    return HealthCheckRequestType.decode(b) as unknown as HealthRequest;
  } catch {
    return { service: '\0invalid' };
  }
}

const encodeHealthResponse = (v: HealthResponse): Uint8Array => HealthCheckResponseType.encode(v).finish();

const KNOWN_SERVICES = new Set(['', 'envoy.service.auth.v3.Authorization']);

export interface CheckCounts {
  /** Checks handed to the handler. */
  readonly started: number;
  /** Checks whose answer (decision or INTERNAL) was handed back to gRPC. */
  readonly answered: number;
}

export interface GrpcServerHandle {
  readonly port: number;
  setServing(serving: boolean): void;
  /** Checks started and not yet answered. */
  inflight(): number;
  counts(): CheckCounts;
  /**
   * Stop accepting (GOAWAY on open connections, listener closed); wait for in-flight calls up to `timeoutMs`,
   * then force. Resolves with the number of checks still unanswered when forced (0 after a clean drain).
   */
  shutdown(timeoutMs: number): Promise<{ dropped: number }>;
}

/** Another service on the same server (the ext_proc processor): its methods, and its name for health checks. */
export interface ExtraGrpcService {
  readonly name: string;
  readonly methods: readonly GrpcMethod[];
}

export async function startGrpcServer(
  listen: string,
  handler: CheckHandler,
  onInvalid?: (reason: string) => void,
  extraServices: readonly ExtraGrpcService[] = [],
): Promise<GrpcServerHandle> {
  let serving = false;
  let started = 0;
  let answered = 0;
  const watchers = new Map<StreamCall<HealthRequest, HealthResponse>, string | undefined>();
  const known = new Set([...KNOWN_SERVICES, ...extraServices.map((extra) => extra.name)]);
  const statusFor = (service: string | undefined) =>
    !known.has(service ?? '') ? SERVICE_UNKNOWN : serving ? SERVING : NOT_SERVING;

  const check: GrpcMethod = {
    kind: 'unary',
    path: CHECK_PATH,
    decode: safeDeserialize,
    encode: serializeCheckResponse,
    handle(req: ProtoCheckRequest | DecodeError, reply: UnaryReply<object>, clientDeadline: number | undefined) {
      if (req instanceof DecodeError) {
        onInvalid?.(req.message);
        reply.fail(GrpcStatus.INVALID_ARGUMENT, req.message);
        return;
      }
      let view: RequestView;
      try {
        view = toRequestView(req);
      } catch (err) {
        const msg = err instanceof InvalidCheckRequest ? err.message : 'invalid CheckRequest';
        onInvalid?.(msg);
        reply.fail(GrpcStatus.INVALID_ARGUMENT, msg);
        return;
      }
      started++;
      const answer = (outcome: CheckOutcome) => {
        answered++;
        reply.ok(toCheckResponse(outcome.decision));
      };
      const fail = () => {
        answered++;
        reply.fail(GrpcStatus.INTERNAL, 'internal error');
      };
      let outcome: MaybePromise<CheckOutcome>;
      try {
        outcome = handler(view, clientDeadline);
      } catch {
        fail();
        return;
      }
      // A warm Check is answered in this tick; one waiting on a backend when its promise settles.
      if (outcome instanceof Promise) outcome.then(answer, fail);
      else answer(outcome);
    },
  };

  const healthCheck: GrpcMethod = {
    kind: 'unary',
    path: '/grpc.health.v1.Health/Check',
    decode: decodeHealthRequest,
    encode: encodeHealthResponse,
    handle(req: HealthRequest, reply: UnaryReply<HealthResponse>) {
      const status = statusFor(req.service);
      if (status === SERVICE_UNKNOWN) reply.fail(GrpcStatus.NOT_FOUND, 'unknown service');
      else reply.ok({ status });
    },
  };

  const healthWatch: GrpcMethod = {
    kind: 'streaming',
    path: '/grpc.health.v1.Health/Watch',
    decode: decodeHealthRequest,
    encode: encodeHealthResponse,
    handle(call: StreamCall<HealthRequest, HealthResponse>) {
      // Server streaming: the one request names the service; every change of status is sent until cancelled.
      call.once('data', (req) => {
        call.write({ status: statusFor(req.service) });
        watchers.set(call, req.service);
      });
      call.once('close', () => watchers.delete(call));
    },
  };

  const transport = await startGrpcTransport(
    listen,
    [check, healthCheck, healthWatch, ...extraServices.flatMap((extra) => extra.methods)],
    { maxReceiveMessageBytes: MAX_RECEIVE_MESSAGE_BYTES },
  );

  return {
    port: transport.port,
    setServing(s: boolean) {
      serving = s;
      for (const [w, service] of watchers) w.write({ status: statusFor(service) });
    },
    inflight: () => started - answered,
    counts: () => ({ started, answered }),
    async shutdown(timeoutMs: number) {
      serving = false;
      for (const w of watchers.keys()) {
        w.write({ status: NOT_SERVING });
        w.end();
      }
      watchers.clear();
      return new Promise<{ dropped: number }>((resolve) => {
        const t = setTimeout(() => {
          const dropped = started - answered;
          transport.destroy();
          resolve({ dropped });
        }, timeoutMs);
        // close() stops the listener and sends GOAWAY: calls already received finish, new ones go elsewhere.
        void transport.close().then(() => {
          clearTimeout(t);
          resolve({ dropped: 0 });
        });
      });
    },
  };
}
