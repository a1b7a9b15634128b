// The gRPC endpoint: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.Health.
import * as grpc from '@grpc/grpc-js';
import {
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

/** Answers a Check now (every cache warm) or later; throws or rejects only on a bug (→ INTERNAL). */
export type CheckHandler = (view: RequestView) => MaybePromise<CheckOutcome>;

export const SERVING = 1;
export const NOT_SERVING = 2;
export const SERVICE_UNKNOWN = 3;

function safeDeserialize(buf: Buffer): ProtoCheckRequest | DecodeError {
  // grpc-js turns a throwing deserializer into INTERNAL; we want INVALID_ARGUMENT, so decode errors are values.
  try {
    return deserializeCheckRequest(buf);
  } catch (err) {
    return err instanceof DecodeError ? err : new DecodeError('malformed CheckRequest');
  }
}

const authorizationService: grpc.ServiceDefinition = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: unknown) => v as Buffer,
    requestDeserialize: safeDeserialize,
    responseSerialize: serializeCheckResponse,
    responseDeserialize: (b: Buffer) => b,
  },
};

// A health request that does not decode asks for a service nobody has: the answer is NOT_FOUND, not a crash.
function decodeHealthRequest(b: Buffer): { service?: string } {
  try {
    return HealthCheckRequestType.decode(b) as unknown as { service?: string };
  } catch {
    return { service: '\0invalid' };
  }
}

function healthMethod(name: 'Check' | 'Watch'): grpc.MethodDefinition<unknown, { status: number }> {
  return {
    path: `/grpc.health.v1.Health/${name}`,
    requestStream: false,
    responseStream: name === 'Watch',
    requestSerialize: (v: unknown) => v as Buffer,
    requestDeserialize: decodeHealthRequest,
    responseSerialize: (v: { status: number }) => Buffer.from(HealthCheckResponseType.encode(v).finish()),
    responseDeserialize: (b: Buffer) => ({ status: (HealthCheckResponseType.decode(b) as unknown as { status: number }).status }),
  };
}

const healthService: grpc.ServiceDefinition = { Check: healthMethod('Check'), Watch: healthMethod('Watch') };

const KNOWN_SERVICES = new Set(['', 'envoy.service.auth.v3.Authorization']);

export interface CheckCounts {
  /** Checks handed to the handler. */
  readonly started: number;
  /** Checks whose answer (decision or INTERNAL) was handed back to gRPC. */
  readonly answered: number;
}

export interface GrpcServerHandle {
  readonly server: grpc.Server;
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

/** Another service on the same server (the ext_proc processor): registered before bind, known to health checks. */
export interface ExtraGrpcService {
  readonly name: string;
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

export async function startGrpcServer(
  listen: string,
  handler: CheckHandler,
  onInvalid?: (reason: string) => void,
  extraServices: readonly ExtraGrpcService[] = [],
): Promise<GrpcServerHandle> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  let serving = false;
  let started = 0;
  let answered = 0;
  const watchers = new Set<grpc.ServerWritableStream<{ service?: string }, { status: number }>>();
  const known = new Set([...KNOWN_SERVICES, ...extraServices.map((extra) => extra.name)]);
  const statusFor = (service: string | undefined) =>
    !known.has(service ?? '') ? SERVICE_UNKNOWN : serving ? SERVING : NOT_SERVING;

  server.addService(authorizationService, {
    Check: (
      call: grpc.ServerUnaryCall<ProtoCheckRequest | DecodeError, object>,
      callback: grpc.sendUnaryData<object>,
    ) => {
      const req = call.request;
      if (req instanceof DecodeError) {
        onInvalid?.(req.message);
        callback({ code: grpc.status.INVALID_ARGUMENT, details: req.message });
        return;
      }
      let view: RequestView;
      try {
        view = toRequestView(req);
      } catch (err) {
        const msg = err instanceof InvalidCheckRequest ? err.message : 'invalid CheckRequest';
        onInvalid?.(msg);
        callback({ code: grpc.status.INVALID_ARGUMENT, details: msg });
        return;
      }
      started++;
      const answer = (outcome: CheckOutcome) => {
        answered++;
        callback(null, toCheckResponse(outcome.decision));
      };
      const fail = () => {
        answered++;
        callback({ code: grpc.status.INTERNAL, details: 'internal error' });
      };
      let outcome: MaybePromise<CheckOutcome>;
      try {
        outcome = handler(view);
      } catch {
        fail();
        return;
      }
      // A warm Check is answered in this tick; one waiting on a backend when its promise settles.
      if (outcome instanceof Promise) outcome.then(answer, fail);
      else answer(outcome);
    },
  });
  server.addService(healthService, {
    Check: (call: grpc.ServerUnaryCall<{ service?: string }, { status: number }>, cb: grpc.sendUnaryData<{ status: number }>) => {
      const status = statusFor(call.request.service);
      if (status === SERVICE_UNKNOWN) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else cb(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<{ service?: string }, { status: number }>) => {
      call.write({ status: statusFor(call.request.service) });
      watchers.add(call);
      call.on('cancelled', () => watchers.delete(call));
      call.on('close', () => watchers.delete(call));
    },
  });

  for (const extra of extraServices) server.addService(extra.definition, extra.implementation);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });

  return {
    server,
    port,
    setServing(s: boolean) {
      serving = s;
      for (const w of watchers) w.write({ status: statusFor(w.request.service) });
    },
    inflight: () => started - answered,
    counts: () => ({ started, answered }),
    async shutdown(timeoutMs: number) {
      serving = false;
      for (const w of watchers) {
        w.write({ status: NOT_SERVING });
        w.end();
      }
      watchers.clear();
      return new Promise<{ dropped: number }>((resolve) => {
        const t = setTimeout(() => {
          const dropped = started - answered;
          server.forceShutdown();
          resolve({ dropped });
        }, timeoutMs);
        // tryShutdown closes the listener and sends GOAWAY: calls already received finish, new ones go elsewhere.
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve({ dropped: 0 });
        });
      });
    },
  };
}
