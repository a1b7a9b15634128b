// envoy.service.ext_proc.v3.ExternalProcessor/Process on the same gRPC server as ext_authz: reads the token
// usage of LLM responses and debits the budgets the Check granted (docs/token-budgets.md).
//
// Protocol duties, whatever happens: every message Envoy sends is answered, in order, with the matching
// response and no mutation (CONTINUE; the body is never changed) — except in observability mode, where
// Envoy ignores answers and none are sent. Per-stream state lives in one Map entry, deleted when the stream
// ends, is cancelled or fails; the usage is debited once per stream: at the end of the response body, or,
// for a stream that ends early, with what was seen so far (docs: "What is debited").
import type { Logger } from 'pino';
import { budgetLedger } from '../budget/ledger.js';
import { budgetMetrics, type BudgetMetrics } from '../budget/metrics.js';
import { settle, type ResponseEnd } from '../budget/settlement.js';
import type { BudgetGrant } from '../budget/grant.js';
import type { Services } from '../pipeline/services.js';
import { GrpcStatus, type GrpcMethod, type GrpcStatusCode, type StreamCall } from '../server/grpc-transport.js';
import {
  deserializeProcessingRequest,
  EXT_PROC_SERVICE_NAME,
  ExtProcDecodeError,
  PROCESS_PATH,
  serializeProcessingResponse,
  type ProtoProcessingRequest,
} from './codec.js';
import { ProcessorStream } from './processor-stream.js';

export interface ExtProcOptions {
  /** How long the answer to a response's last message waits for its debit (default 100 ms). */
  readonly settleWaitMs?: number;
  /** Upper bound on one debit's store call (default 1000 ms; Redis' own command timeout is shorter). */
  readonly debitTimeoutMs?: number;
}

export interface ExtProcService {
  readonly name: string;
  /** Process, for the gRPC server. */
  readonly methods: readonly GrpcMethod[];
  /** Streams with state held now: 0 whenever Envoy has no stream open. */
  openStreams(): number;
  /** Resolves when every debit started so far has finished (for shutdown and tests). */
  drain(): Promise<void>;
}

const DEFAULT_SETTLE_WAIT_MS = 100;
const DEFAULT_DEBIT_TIMEOUT_MS = 1000;
/** Store failures are logged at most this often (metrics count every one). */
const FAILURE_LOG_INTERVAL_MS = 60_000;

type ProcessCall = StreamCall<ProtoProcessingRequest | ExtProcDecodeError, object>;

/** The answer that continues unchanged, for each kind of message. */
const CONTINUE = { response: {} };

/** The server's ext_proc service (one per Services): app.ts registers it, tests inspect it. */
export function extProcService(services: Services): ExtProcService {
  return services.singleton('ext-proc-service', () => createExtProcService(services));
}

export function createExtProcService(services: Services, options: ExtProcOptions = {}): ExtProcService {
  const settleWaitMs = options.settleWaitMs ?? DEFAULT_SETTLE_WAIT_MS;
  const debitTimeoutMs = options.debitTimeoutMs ?? DEFAULT_DEBIT_TIMEOUT_MS;
  const logger: Logger = services.logger;
  const streams = new Map<number, ProcessorStream>();
  const debitsInFlight = new Set<Promise<void>>();
  let nextId = 0;
  let lastFailureLogMs = Number.NEGATIVE_INFINITY;
  let metricsCache: BudgetMetrics | undefined;
  const metrics = (): BudgetMetrics => (metricsCache ??= budgetMetrics(services));

  /** Debits one response's usage; never rejects (store trouble is counted and logged). */
  const settleResponse = async (grant: BudgetGrant, end: ResponseEnd, streamId: number): Promise<void> => {
    const settlement = settle(grant, end);
    metrics().responses.inc({
      outcome: settlement.outcome,
      reason: settlement.reason ?? '',
      provider: end.reading?.provider ?? 'unknown',
    });
    if (settlement.reported.input > 0) metrics().tokens.inc({ kind: 'input' }, settlement.reported.input);
    if (settlement.reported.output > 0) metrics().tokens.inc({ kind: 'output' }, settlement.reported.output);
    logger.debug(
      {
        stream: streamId,
        policy: grant.policy,
        identity: grant.identity,
        outcome: settlement.outcome,
        reason: settlement.reason,
        usage: settlement.usage,
        budgets: grant.budgets.map((budget) => budget.name),
      },
      'token usage settled',
    );
    if (settlement.counters.length === 0) return;
    try {
      const outcome = await budgetLedger(services).debit({ counters: settlement.counters }, debitTimeoutMs);
      if (outcome.kind === 'answered') return;
      metrics().storeFailures.inc({ stage: 'settle', reason: outcome.reason });
      logFailure(`token-budget store unavailable (${outcome.reason}): the usage of a response may not have been debited`, grant);
    } catch {
      metrics().storeFailures.inc({ stage: 'settle', reason: 'error' });
      logFailure('token-budget debit failed: usage of a response was not debited', grant);
    }
  };

  const logFailure = (message: string, grant: BudgetGrant): void => {
    const now = Date.now();
    if (now - lastFailureLogMs < FAILURE_LOG_INTERVAL_MS) return;
    lastFailureLogMs = now;
    logger.warn({ policy: grant.policy }, message);
  };

  /** Starts the debit of a stream's response (once); resolves when it is done. */
  const startSettle = (stream: ProcessorStream, complete: boolean): Promise<void> => {
    const end = stream.end(complete);
    const grant = stream.grant;
    if (end === undefined || grant === undefined) return Promise.resolve();
    const work = settleResponse(grant, end, stream.id);
    debitsInFlight.add(work);
    void work.finally(() => debitsInFlight.delete(work));
    return work;
  };

  const processStream = (call: ProcessCall): void => {
    const id = ++nextId;
    const stream = new ProcessorStream(id);
    streams.set(id, stream);
    metrics().openStreams.inc();
    let closed = false;
    let queue: Promise<void> = Promise.resolve();

    /** Drops the stream's state (once) and debits what its response showed, if not done yet. */
    const close = (complete: boolean): void => {
      if (closed) return;
      closed = true;
      streams.delete(id);
      metrics().openStreams.dec();
      void startSettle(stream, complete);
    };

    const answer = (request: ProtoProcessingRequest, response: object): void => {
      if (closed || request.observabilityMode === true) return;
      call.write(response);
    };

    const handle = async (request: ProtoProcessingRequest | ExtProcDecodeError): Promise<void> => {
      if (closed) return;
      if (request instanceof ExtProcDecodeError) {
        fail(GrpcStatus.INVALID_ARGUMENT, request.message);
        return;
      }
      stream.onMetadata(request.metadataContext);
      switch (request.request) {
        case 'requestHeaders':
          answer(request, { requestHeaders: CONTINUE });
          return;
        case 'requestBody':
          answer(request, { requestBody: CONTINUE });
          return;
        case 'requestTrailers':
          answer(request, { requestTrailers: {} });
          return;
        case 'responseHeaders': {
          const headers = request.responseHeaders ?? {};
          stream.onResponseHeaders(headers);
          if (headers.endOfStream === true) await settleWithin(stream, true);
          // Without a grant there is nothing to count: a processor that may override the mode (Envoy's
          // allow_mode_override) stops sending this response's body.
          answer(
            request,
            stream.grant === undefined ? { responseHeaders: CONTINUE, modeOverride: { responseBodyMode: 'NONE' } } : { responseHeaders: CONTINUE },
          );
          return;
        }
        case 'responseBody': {
          const body = request.responseBody ?? {};
          if (body.body && body.body.length > 0) stream.onResponseBody(body.body);
          if (body.endOfStream === true) await settleWithin(stream, true);
          answer(request, { responseBody: CONTINUE });
          return;
        }
        case 'responseTrailers':
          // Trailers come after the last body chunk: the response is complete.
          await settleWithin(stream, true);
          answer(request, { responseTrailers: {} });
          return;
        default:
          fail(GrpcStatus.INVALID_ARGUMENT, 'ProcessingRequest without a request, response or trailers message');
      }
    };

    /** Debits now; the answer waits for the debit at most `settleWaitMs` (the debit itself goes on). */
    const settleWithin = async (target: ProcessorStream, complete: boolean): Promise<void> => {
      const work = startSettle(target, complete);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, settleWaitMs)))]);
      clearTimeout(timer);
    };

    const fail = (code: GrpcStatusCode, details: string): void => {
      if (closed) return;
      close(false);
      call.fail(code, details);
    };

    call.on('data', (request: ProtoProcessingRequest | ExtProcDecodeError) => {
      queue = queue.then(() => handle(request)).catch((error: unknown) => {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'ext_proc message failed');
        fail(GrpcStatus.INTERNAL, 'internal error');
      });
    });
    // Envoy half-closes when the HTTP stream is done: answer what is queued, then close our side.
    call.on('end', () => {
      void queue.then(() => {
        const wasClosed = closed;
        close(false);
        if (!wasClosed) call.end();
      });
    });
    call.on('cancelled', () => close(false));
    call.on('close', () => close(false));
  };

  return {
    name: EXT_PROC_SERVICE_NAME,
    methods: [
      { kind: 'streaming', path: PROCESS_PATH, decode: deserializeProcessingRequest, encode: serializeProcessingResponse, handle: processStream },
    ],
    openStreams: () => streams.size,
    async drain() {
      while (debitsInFlight.size > 0) await Promise.all([...debitsInFlight]);
    },
  };
}
