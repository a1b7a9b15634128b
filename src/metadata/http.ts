// `http`: Kuadrant/Authorino-compatible generic HTTP metadata. Calls a URL (static `url` or CEL
// `urlExpression`) with CEL-built headers and body; a JSON answer is parsed, anything else kept as a string.
// Outcomes follow Kuadrant's "a failed metadata source leaves no value" for 3xx/4xx and bad requests; a
// backend that is down, slow or answering 5xx denies the Check with 503 (fail closed within the deadline).
import { hashKey } from '../cache/cache.js';
import type { CelProgram } from '../cel/compile.js';
import { celErrorMessage } from '../cel/compile.js';
import type { CheckContext } from '../pipeline/context.js';
import { compileField, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import { readDurationMs } from './durations.js';
import { readBodyLimited, describeFetchError } from './fetch-util.js';
import { compileResponseCache, responseCacheKey, sharedResponseCache, type ResponseCacheSpec } from './response-cache.js';
import { waitWithinDeadline } from '../pipeline/deadline.js';
import { checkSignal } from './signals.js';
import type { MetadataSourceFactory, SourceOutcome } from './source.js';
import { likelySecrets, toCelValue } from './values.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
type Method = (typeof METHODS)[number];
const CONTENT_TYPES = ['application/x-www-form-urlencoded', 'application/json'] as const;
type ContentType = (typeof CONTENT_TYPES)[number];
const DEFAULT_TIMEOUT_MS = 1000;
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** A literal (`{value}`) or a CEL expression (`{expression}` or a bare string). */
type ValueSpec = { literal: unknown } | { program: CelProgram };

interface HttpSpec {
  readonly url: string | CelProgram;
  readonly method: Method;
  readonly contentType: ContentType;
  readonly body?: ValueSpec;
  readonly bodyParameters: ReadonlyArray<{ name: string; value: ValueSpec }>;
  readonly headers: ReadonlyArray<{ name: string; value: ValueSpec }>;
  readonly timeoutMs: number;
  readonly cache?: ResponseCacheSpec;
}

interface BuiltRequest {
  url: URL;
  init: { method: Method; headers: Headers; body?: string };
}

/** What a call yields: the outcome, plus the strings to scrub from logs for every Check that uses it. */
interface CallResult {
  readonly outcome: SourceOutcome;
  readonly secrets: readonly string[];
}

function readValueSpec(node: YNode, what: string, sc: SectionContext): ValueSpec | undefined {
  if (node.isMap) {
    node.checkKeys(['value', 'expression', 'selector'], what);
    if (node.get('selector')) {
      node.get('selector')!.error(`${what}.selector (Authorino JSON paths) is not supported; use "expression" (CEL)`);
      return undefined;
    }
    const lit = node.get('value');
    if (lit) return { literal: lit.toJS() };
    const expr = node.get('expression');
    if (!expr) {
      node.error(`${what}: give "value" or "expression"`);
      return undefined;
    }
    const program = compileField(expr, 'any', `${what}.expression`, sc);
    return program ? { program } : undefined;
  }
  const program = compileField(node, 'any', what, sc);
  return program ? { program } : undefined;
}

function evalValue(v: ValueSpec, ctx: CheckContext): unknown {
  return 'literal' in v ? v.literal : v.program.evaluate(ctx.activation);
}

function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x)) ?? 'null';
}

/** A string is sent as it is (the seed builds its JSON body as a string); other values are JSON-encoded. */
function asText(v: unknown): string {
  return typeof v === 'string' ? v : jsonText(v);
}

function compileSpec(config: YNode, name: string, cache: ResponseCacheSpec | undefined, sc: SectionContext): HttpSpec | undefined {
  const what = `metadata "${name}".http`;
  config.checkKeys(
    ['url', 'urlExpression', 'method', 'contentType', 'body', 'bodyParameters', 'headers', 'timeout', 'sharedSecretRef', 'credentials', 'oauth2'],
    what,
  );
  for (const unsupported of ['sharedSecretRef', 'credentials', 'oauth2'] as const) {
    config.get(unsupported)?.error(
      `${what}.${unsupported} is not supported: it would read a Kubernetes Secret or send a fixed credential; ` +
        `set the header with a CEL expression, or use the "vault" source for Vault`,
    );
  }
  const urlNode = config.get('url');
  const urlExprNode = config.get('urlExpression');
  let url: string | CelProgram | undefined;
  if (urlNode && urlExprNode) config.error(`${what}: give "url" or "urlExpression", not both`);
  else if (urlNode) {
    const text = urlNode.string(`${what}.url`);
    if (text !== undefined) {
      const parsed = URL.canParse(text) ? new URL(text) : undefined;
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) urlNode.error(`${what}.url: expected an http(s) URL`);
      else url = text;
    }
  } else if (urlExprNode) url = compileField(urlExprNode, 'string', `${what}.urlExpression`, sc);
  else config.error(`${what}: "url" or "urlExpression" is required`);

  const methodText = (config.get('method')?.string(`${what}.method`) ?? 'GET').toUpperCase();
  const method = METHODS.find((m) => m === methodText);
  if (!method) config.get('method')!.error(`${what}.method: one of ${METHODS.join(', ')}`);

  const ctText = config.get('contentType')?.string(`${what}.contentType`) ?? 'application/x-www-form-urlencoded';
  const contentType = CONTENT_TYPES.find((c) => c === ctText);
  if (!contentType) config.get('contentType')!.error(`${what}.contentType: one of ${CONTENT_TYPES.join(', ')}`);

  const bodyNode = config.get('body');
  const body = bodyNode && !bodyNode.isNull ? readValueSpec(bodyNode, `${what}.body`, sc) : undefined;
  const bodyParameters: Array<{ name: string; value: ValueSpec }> = [];
  for (const [key, v] of config.get('bodyParameters')?.entries(`${what}.bodyParameters: a map`) ?? []) {
    const value = readValueSpec(v, `${what}.bodyParameters.${key}`, sc);
    if (value) bodyParameters.push({ name: key, value });
  }
  if (bodyNode && bodyParameters.length) config.error(`${what}: give "body" or "bodyParameters", not both`);
  if (method === 'GET' && (bodyNode || bodyParameters.length)) config.error(`${what}: a GET request has no body; use method POST`);

  const headers: Array<{ name: string; value: ValueSpec }> = [];
  for (const [key, v] of config.get('headers')?.entries(`${what}.headers: a map`) ?? []) {
    const value = readValueSpec(v, `${what}.headers.${key}`, sc);
    if (value) headers.push({ name: key, value });
  }
  const timeoutMs = readDurationMs(config.get('timeout'), `${what}.timeout`, DEFAULT_TIMEOUT_MS);
  if (url === undefined || !method || !contentType) return undefined;
  return { url, method, contentType, body, bodyParameters, headers, timeoutMs, cache };
}

/** Builds the request for this Check. Throws (CEL or URL errors) when it cannot be built. */
function buildRequest(spec: HttpSpec, ctx: CheckContext): BuiltRequest {
  const urlText = typeof spec.url === 'string' ? spec.url : spec.url.evaluate(ctx.activation);
  if (typeof urlText !== 'string' || !URL.canParse(urlText)) throw new Error('the URL expression did not give a URL');
  const url = new URL(urlText);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('the URL is not http(s)');
  const headers = new Headers();
  for (const h of spec.headers) {
    const value = asText(evalValue(h.value, ctx));
    // Headers.set echoes an invalid value in its error; the value may be a credential, so say less.
    if (/[\r\n\0]/.test(value)) throw new Error(`header ${h.name}: the value has a line break or NUL`);
    headers.set(h.name, value);
  }
  const init: BuiltRequest['init'] = { method: spec.method, headers };
  if (spec.method !== 'GET') {
    headers.set('content-type', spec.contentType);
    if (spec.body) init.body = asText(evalValue(spec.body, ctx));
    else if (spec.contentType === 'application/json') {
      const data: Record<string, unknown> = {};
      for (const p of spec.bodyParameters) data[p.name] = evalValue(p.value, ctx);
      init.body = jsonText(data);
    } else {
      const form = new URLSearchParams();
      for (const p of spec.bodyParameters) form.set(p.name, asText(evalValue(p.value, ctx)));
      init.body = form.toString();
    }
  }
  return { url, init };
}

export const httpSource: MetadataSourceFactory = ({ name, config, cache, sc }) => {
  const spec = compileSpec(config, name, cache, sc);
  if (!spec) return undefined;
  const { services } = sc;
  const label = `metadata "${name}"`;
  // The source's own definition is part of the scope: a reload that changes its URL, headers or body never
  // serves answers cached for the old definition.
  const range = config.node?.range;
  const definition = range ? config.src.text.slice(range[0], range[1]) : '';
  const scope = `${sc.policy}\0${name}\0${hashKey(definition)}`;
  const responses = spec.cache ? sharedResponseCache<CallResult>(services) : undefined;

  async function call(req: BuiltRequest, signal: AbortSignal): Promise<CallResult> {
    // The host names the backend in reasons; the full URL may carry credentials, so it is never logged.
    const where = `${req.init.method} ${req.url.host}`;
    try {
      const res = await services.metrics.timeBackend(
        'http',
        () => fetch(req.url, { ...req.init, signal, redirect: 'manual' }),
        (r) => (r.status >= 500 ? '5xx' : r.status >= 400 ? '4xx' : 'ok'),
      );
      if (res.status >= 500) {
        await res.body?.cancel();
        return { outcome: { kind: 'deny', status: 503, reason: `${label} (${where}) answered HTTP ${res.status}` }, secrets: [] };
      }
      if (res.status >= 300 || res.status < 200) {
        await res.body?.cancel();
        return { outcome: { kind: 'absent', reason: `${where} answered HTTP ${res.status}` }, secrets: [] };
      }
      const text = await readBodyLimited(res, MAX_RESPONSE_BYTES);
      if (!(res.headers.get('content-type') ?? '').includes('application/json')) {
        return { outcome: { kind: 'ok', value: text }, secrets: text.length >= 4 ? [text] : [] };
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { outcome: { kind: 'absent', reason: `${where} answered invalid JSON` }, secrets: [] };
      }
      return { outcome: { kind: 'ok', value: toCelValue(parsed) }, secrets: likelySecrets(parsed) };
    } catch (err) {
      return { outcome: { kind: 'deny', status: 503, reason: `${label} (${where}) unavailable: ${describeFetchError(err)}` }, secrets: [] };
    }
  }

  return {
    kind: 'http',
    async fetch(ctx: CheckContext): Promise<SourceOutcome> {
      let req: BuiltRequest;
      let key: string | undefined;
      try {
        req = buildRequest(spec, ctx);
        if (spec.cache && responses) key = responseCacheKey(spec.cache, scope, ctx);
      } catch (err) {
        return { kind: 'absent', reason: `request not built: ${celErrorMessage(err)}` };
      }
      let result: CallResult;
      if (key === undefined || !responses || !spec.cache) {
        result = await call(req, checkSignal(ctx.signal, spec.timeoutMs));
      } else {
        const ttlMs = spec.cache.ttlMs;
        const waited = await waitWithinDeadline(
          responses.getOrLoad(key, async () => {
            // Shared by every waiter: bounded by the source's own timeout, not one caller's deadline.
            const r = await call(req, AbortSignal.timeout(spec.timeoutMs));
            return { value: r, ttlMs: r.outcome.kind === 'ok' ? ttlMs : 0 };
          }),
          ctx,
        );
        if (!waited.done) return { kind: 'deny', status: 503, reason: `${label} (${req.url.host}) gave no answer within the deadline` };
        result = waited.value;
      }
      ctx.secrets.push(...result.secrets);
      return result.outcome;
    },
  };
};
