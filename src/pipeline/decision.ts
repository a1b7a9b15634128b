// The outcome of one Check, independent of the wire format (envoy/response.ts encodes it).

export type HeaderAction = 'overwrite' | 'append' | 'addIfAbsent' | 'overwriteIfExists';

export interface HeaderMutation {
  readonly key: string;
  readonly value: string;
  readonly action: HeaderAction;
  readonly keepEmptyValue?: boolean;
}

export interface QueryParam {
  readonly key: string;
  readonly value: string;
}

/** Which stage decided: shown in decision logs, metrics and explain output. */
export type Evaluator =
  | 'select'
  | 'when'
  | 'identity'
  | 'metadata'
  | 'authorization'
  | 'ratelimit'
  | 'response'
  | 'kyverno'
  | 'default'
  | 'internal';

export interface AllowDecision {
  readonly kind: 'allow';
  readonly policy: string;
  readonly evaluator: Evaluator;
  readonly headers: readonly HeaderMutation[];
  readonly headersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderMutation[];
  readonly queryParamsToSet: readonly QueryParam[];
  readonly queryParamsToRemove: readonly string[];
  readonly dynamicMetadata?: Readonly<Record<string, unknown>>;
  /** Values of headers this decision injects: redacted from every log line. */
  readonly reason: string;
  readonly identity?: string;
}

export interface DenyDecision {
  readonly kind: 'deny';
  readonly policy: string;
  readonly evaluator: Evaluator;
  /** HTTP status for the workload (401, 403, 429, 503, ...). Always set. */
  readonly status: number;
  readonly headers: readonly HeaderMutation[];
  readonly body: string;
  /** Short, secret-free reason; goes into the JSON body, logs and explain output. */
  readonly reason: string;
  readonly identity?: string;
  readonly dynamicMetadata?: Readonly<Record<string, unknown>>;
  /** A Kyverno policy whose rules made no decision: the next global policy is asked. */
  readonly undecided?: boolean;
  /** The deny comes from an evaluation error (a CEL runtime error under failurePolicy Fail): counted as one. */
  readonly evaluationError?: boolean;
}

export type Decision = AllowDecision | DenyDecision;

export function errorBody(error: string, reason: string): string {
  return JSON.stringify({ error, reason });
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'forbidden',
  429: 'rate_limited',
  500: 'internal_error',
  503: 'unavailable',
};

export function statusError(status: number): string {
  return STATUS_TEXT[status] ?? (status >= 500 ? 'unavailable' : 'denied');
}

export function deny(
  policy: string,
  evaluator: Evaluator,
  status: number,
  reason: string,
  extra: Partial<Pick<DenyDecision, 'headers' | 'body' | 'identity' | 'dynamicMetadata' | 'undecided' | 'evaluationError'>> = {},
): DenyDecision {
  const jsonBody = extra.body === undefined;
  const headers = extra.headers ?? [];
  return {
    kind: 'deny',
    policy,
    evaluator,
    status,
    reason,
    // Our own bodies are JSON; a policy's own body keeps Envoy's default (text/plain).
    headers: jsonBody ? [...headers, { key: 'content-type', value: 'application/json', action: 'overwrite' }] : headers,
    body: extra.body ?? errorBody(statusError(status), reason),
    undecided: extra.undecided,
    evaluationError: extra.evaluationError,
    identity: extra.identity,
    dynamicMetadata: extra.dynamicMetadata,
  };
}

export function allow(policy: string, evaluator: Evaluator, reason = 'allowed'): AllowDecision {
  return allowWith(EMPTY_ALLOW, { policy, evaluator, reason });
}

const NONE: readonly never[] = Object.freeze([]);

const EMPTY_ALLOW: AllowDecision = Object.freeze({
  kind: 'allow',
  policy: '',
  evaluator: 'authorization',
  reason: 'allowed',
  headers: NONE,
  headersToRemove: NONE,
  responseHeadersToAdd: NONE,
  queryParamsToSet: NONE,
  queryParamsToRemove: NONE,
  dynamicMetadata: undefined,
  identity: undefined,
});

/**
 * `base` with some fields changed, as a new allow decision. Every allow decision is built here, with every
 * field in one order: a Check builds several (one per stage that adds headers, the response, the identity),
 * and object spreads over allows of different shapes were a measurable share of a warm Check.
 */
export function allowWith(base: AllowDecision, change: Partial<Omit<AllowDecision, 'kind'>>): AllowDecision {
  return {
    kind: 'allow',
    policy: change.policy ?? base.policy,
    evaluator: change.evaluator ?? base.evaluator,
    reason: change.reason ?? base.reason,
    headers: change.headers ?? base.headers,
    headersToRemove: change.headersToRemove ?? base.headersToRemove,
    responseHeadersToAdd: change.responseHeadersToAdd ?? base.responseHeadersToAdd,
    queryParamsToSet: change.queryParamsToSet ?? base.queryParamsToSet,
    queryParamsToRemove: change.queryParamsToRemove ?? base.queryParamsToRemove,
    dynamicMetadata: change.dynamicMetadata ?? base.dynamicMetadata,
    identity: change.identity ?? base.identity,
  };
}
