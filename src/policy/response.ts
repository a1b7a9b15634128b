// `response`: what an allow injects (headers, removals, query parameters, dynamic metadata) and how denials
// look (code, message, headers, body). Values are CEL, compiled at load.
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext } from '../pipeline/context.js';
import {
  allowWith,
  errorBody,
  statusError,
  type AllowDecision,
  type DenyDecision,
  type HeaderAction,
  type HeaderMutation,
} from '../pipeline/decision.js';
import { compileField, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';

interface CompiledHeader {
  key: string;
  value: CelProgram | string;
  action: HeaderAction;
}

export interface SuccessResponse {
  readonly headers: readonly CompiledHeader[];
  readonly removeHeaders: readonly string[];
  readonly responseHeaders: readonly CompiledHeader[];
  readonly querySet: ReadonlyArray<{ key: string; value: CelProgram | string }>;
  readonly queryRemove: readonly string[];
  readonly dynamicMetadata: ReadonlyArray<{ key: string; value: CelProgram }>;
}

export interface DenialTemplate {
  readonly code?: number;
  readonly message?: CelProgram | string;
  readonly headers: readonly CompiledHeader[];
  readonly body?: CelProgram | string;
}

export type DenialKind = 'unauthenticated' | 'unauthorized' | 'rateLimited' | 'unavailable';

export interface ResponseSpec {
  readonly success?: SuccessResponse;
  readonly denials: Partial<Record<DenialKind, DenialTemplate>>;
}

const ACTIONS: Record<string, HeaderAction> = {
  overwrite: 'overwrite',
  append: 'append',
  addIfAbsent: 'addIfAbsent',
  overwriteIfExists: 'overwriteIfExists',
};

/** A value: CEL string, `{expression}`, `{value}` (literal), or Kuadrant's `{plain: {expression|value}}`. */
function readValue(node: YNode, what: string, sc: SectionContext, expected: 'string' | 'any' = 'string'): CelProgram | string | undefined {
  if (node.isMap) {
    const plain = node.get('plain');
    const inner = plain ?? node;
    if (plain) node.checkKeys(['plain', 'action', 'key'], what);
    else node.checkKeys(['expression', 'value', 'action', 'selector'], what);
    inner.checkKeys(['expression', 'value', 'selector', ...(plain ? [] : ['action'])], what);
    const lit = inner.get('value');
    if (lit) return lit.string(`${what}.value`);
    if (inner.get('selector')) {
      inner.get('selector')!.error(`${what}: "selector" (Authorino JSON paths) is not supported; use "expression" (CEL)`);
      return undefined;
    }
    return compileField(inner.get('expression'), expected, `${what}.expression`, sc);
  }
  return compileField(node, expected, what, sc);
}

function readHeaders(node: YNode | undefined, what: string, sc: SectionContext, defaultAction: HeaderAction): CompiledHeader[] {
  const out: CompiledHeader[] = [];
  for (const [key, v] of node?.entries(what) ?? []) {
    const value = readValue(v, `${what}.${key}`, sc);
    let action = defaultAction;
    const a = v.isMap ? v.get('action')?.string('action') : undefined;
    if (a !== undefined) {
      const found = ACTIONS[a];
      if (!found) v.get('action')!.error(`${what}.${key}.action: one of ${Object.keys(ACTIONS).join(', ')}`);
      else action = found;
    }
    if (value !== undefined) out.push({ key: key.toLowerCase(), value, action });
  }
  return out;
}

function compileSuccess(node: YNode, sc: SectionContext): SuccessResponse {
  node.checkKeys(
    ['headers', 'removeHeaders', 'responseHeaders', 'queryParameters', 'dynamicMetadata', 'filters'],
    'response.success',
  );
  if (node.get('filters')) node.get('filters')!.error('response.success.filters: use dynamicMetadata (CEL values)');
  const qp = node.get('queryParameters');
  qp?.checkKeys(['set', 'remove'], 'response.success.queryParameters');
  const querySet: Array<{ key: string; value: CelProgram | string }> = [];
  for (const [key, v] of qp?.get('set')?.entries() ?? []) {
    const value = readValue(v, `queryParameters.set.${key}`, sc);
    if (value !== undefined) querySet.push({ key, value });
  }
  const dynamicMetadata: Array<{ key: string; value: CelProgram }> = [];
  for (const [key, v] of node.get('dynamicMetadata')?.entries() ?? []) {
    const value = compileField(v, 'any', `dynamicMetadata.${key}`, sc);
    if (value) dynamicMetadata.push({ key, value });
  }
  return {
    // Injected credentials must replace what the workload sent: overwrite is the default.
    headers: readHeaders(node.get('headers'), 'response.success.headers', sc, 'overwrite'),
    removeHeaders: [...new Set((node.get('removeHeaders')?.stringList() ?? []).map((h) => h.toLowerCase()))],
    responseHeaders: readHeaders(node.get('responseHeaders'), 'response.success.responseHeaders', sc, 'append'),
    querySet,
    queryRemove: qp?.get('remove')?.stringList() ?? [],
    dynamicMetadata,
  };
}

function compileDenial(node: YNode, what: string, sc: SectionContext): DenialTemplate {
  node.checkKeys(['code', 'message', 'headers', 'body'], what);
  const code = node.get('code')?.number('an HTTP status code');
  if (code !== undefined && (code < 300 || code > 599)) node.get('code')!.error(`${what}.code must be 300–599`);
  const msg = node.get('message');
  const body = node.get('body');
  return {
    code,
    message: msg ? readValue(msg, `${what}.message`, sc) : undefined,
    headers: readHeaders(node.get('headers'), `${what}.headers`, sc, 'overwrite'),
    body: body ? readValue(body, `${what}.body`, sc) : undefined,
  };
}

export function compileResponse(node: YNode | undefined, sc: SectionContext): ResponseSpec {
  if (!node || node.isNull) return { denials: {} };
  const kinds: DenialKind[] = ['unauthenticated', 'unauthorized', 'rateLimited', 'unavailable'];
  node.checkKeys(['success', ...kinds], 'response');
  const denials: Partial<Record<DenialKind, DenialTemplate>> = {};
  for (const k of kinds) {
    const n = node.get(k);
    if (n) denials[k] = compileDenial(n, `response.${k}`, sc);
  }
  const s = node.get('success');
  return { success: s ? compileSuccess(s, sc) : undefined, denials };
}

function evalString(v: CelProgram | string, ctx: CheckContext): string {
  if (typeof v === 'string') return v;
  const r = v.evaluate(ctx.activation);
  if (typeof r === 'string') return r;
  if (typeof r === 'bigint' || typeof r === 'number' || typeof r === 'boolean') return String(r);
  if (r === null || r === undefined) throw new Error('value is null');
  return JSON.stringify(r, (_k, x) => (typeof x === 'bigint' ? Number(x) : x));
}

function toMutations(list: readonly CompiledHeader[], ctx: CheckContext, secret: boolean): HeaderMutation[] {
  return list.map((h) => {
    const value = evalString(h.value, ctx);
    // Injected header values are credentials more often than not: never log them.
    if (secret && value) ctx.secrets.push(value);
    return { key: h.key, value, action: h.action };
  });
}

/**
 * Request headers carrying the workload's own credential (the one the identity stage accepted) that the
 * injected headers do not overwrite: when a credential is injected (e.g. `x-api-key` while the workload's SA
 * token came in `Authorization`, or the token came in a custom header), they are removed so that the
 * workload's token never reaches the upstream.
 */
function credentialCarriers(injected: readonly HeaderMutation[], ctx: CheckContext): readonly string[] {
  const credential = ctx.credential;
  if (!credential || injected.length === 0) return NONE;
  const { headers, headerNames } = ctx.view;
  let found: string[] | undefined;
  for (let i = 0; i < headerNames.length; i++) {
    const key = headerNames[i]!;
    if (key.charCodeAt(0) === COLON) continue;
    // An overwritten header is not compared with the credential (a ~1 KB token in `authorization`).
    if (overwrites(injected, key) || !carries(key, headers[key]!, credential)) continue;
    (found ??= []).push(key);
  }
  return found ?? NONE;
}

const NONE: readonly string[] = Object.freeze([]);
const COLON = 0x3a;

function overwrites(injected: readonly HeaderMutation[], key: string): boolean {
  for (let i = 0; i < injected.length; i++) {
    const h = injected[i]!;
    if (h.key === key && (h.action === 'overwrite' || h.action === 'overwriteIfExists')) return true;
  }
  return false;
}

/** `a` followed by `b`, sharing `a` when there is nothing to add (decisions are never mutated). */
export function concat<T>(a: readonly T[], b: readonly T[]): T[] {
  if (b.length === 0) return a as T[];
  if (a.length === 0) return b as T[];
  return [...a, ...b];
}

/** The header holds exactly the credential: bare, after a scheme (`Bearer <token>`), or as a cookie value. */
function carries(key: string, value: string, credential: string): boolean {
  // Most headers are shorter than a token: reject them without copying anything.
  if (value.length < credential.length) return false;
  if (key === 'cookie') return value.split(';').some((part) => part.slice(part.indexOf('=') + 1).trim() === credential);
  const v = value.trim();
  if (v === credential) return true;
  if (!v.endsWith(credential)) return false;
  const space = v.indexOf(' ');
  return space > 0 && v.slice(space + 1, v.length - credential.length).trim() === '';
}

/** Applies `response.success` to an allow. Throws on CEL errors (the caller applies failurePolicy). */
export function applySuccess(base: AllowDecision, s: SuccessResponse | undefined, ctx: CheckContext): AllowDecision {
  if (!s) return base;
  let dynamicMetadata = base.dynamicMetadata;
  if (s.dynamicMetadata.length) {
    const md: Record<string, unknown> = { ...(base.dynamicMetadata ?? {}) };
    for (const d of s.dynamicMetadata) md[d.key] = d.value.evaluate(ctx.activation);
    dynamicMetadata = md;
  }
  const injected = toMutations(s.headers, ctx, true);
  const carriers = credentialCarriers(injected, ctx);
  const removed = carriers.length === 0 ? s.removeHeaders : [...new Set([...s.removeHeaders, ...carriers])];
  return allowWith(base, {
    headers: concat(base.headers, injected),
    headersToRemove: concat(base.headersToRemove, removed),
    responseHeadersToAdd: concat(base.responseHeadersToAdd, toMutations(s.responseHeaders, ctx, false)),
    queryParamsToSet: concat(base.queryParamsToSet, s.querySet.map((q) => ({ key: q.key, value: evalString(q.value, ctx) }))),
    queryParamsToRemove: concat(base.queryParamsToRemove, s.queryRemove),
    dynamicMetadata,
  });
}

export function denialKindFor(status: number): DenialKind | undefined {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'unauthorized';
  if (status === 429) return 'rateLimited';
  if (status === 503) return 'unavailable';
  return undefined;
}

/** Applies a policy's custom denial (if any) to a deny. A failing template keeps the plain denial. */
export function applyDenial(d: DenyDecision, spec: ResponseSpec, ctx: CheckContext): DenyDecision {
  const kind = denialKindFor(d.status);
  const t = kind ? spec.denials[kind] : undefined;
  if (!t) return d;
  try {
    const status = t.code ?? d.status;
    const message = t.message !== undefined ? evalString(t.message, ctx) : d.reason;
    const body = t.body !== undefined ? evalString(t.body, ctx) : errorBody(statusError(status), message);
    const custom = toMutations(t.headers, ctx, false);
    const keep = d.headers.filter((h) => !custom.some((c) => c.key === h.key) && !(t.body !== undefined && h.key === 'content-type'));
    return { ...d, status, reason: message, body, headers: [...keep, ...custom] };
  } catch (err) {
    ctx.addTrace({ evaluator: 'response', name: `response.${kind}`, result: `error: ${celErrorMessage(err)}`, durationMs: 0 });
    return d;
  }
}
