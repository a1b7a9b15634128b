// One JSON line per Check. Identity is a label (username / principal), never a credential; every secret
// the Check handled is scrubbed from every field before the line is written. Header and query values are
// never written, at any level: a rejected credential is not in the Check's secret list but is still secret.
import pino, { type Logger } from 'pino';
import type { RequestView } from '../envoy/request-view.js';
import type { CheckOutcome } from '../pipeline/authorizer.js';
import { BatchedLineStream, type DeferredLine } from './logger.js';

export type DecisionLogMode = 'all' | 'deny' | 'off';

export interface DecisionLogOptions {
  readonly mode: DecisionLogMode;
  /** Fraction (0–1) of allow decisions written; denies are always written. */
  readonly sampleRate: number;
  /** Random source for sampling (tests pass a fixed one). */
  readonly random?: () => number;
}

/** Secrets shorter than this are not scrubbed: replacing "a" everywhere would destroy the line, not protect it. */
const MIN_SECRET_LENGTH = 4;

export function scrubSecrets(s: string, secrets: readonly string[]): string {
  let out = s;
  for (const secret of secrets) {
    if (secret && secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out;
}

export function shouldLogDecision(opts: DecisionLogOptions, allowed: boolean): boolean {
  if (opts.mode === 'off') return false;
  if (!allowed) return true;
  if (opts.mode === 'deny') return false;
  return opts.sampleRate >= 1 || (opts.sampleRate > 0 && (opts.random ?? Math.random)() < opts.sampleRate);
}

/**
 * The decision line is built here, field by field, from values that are never credentials (header and query
 * values are not written; every secret the Check handled is scrubbed), and written straight to the logger's
 * stream in pino's own line format (level, time, the logger's bindings, the fields, msg). pino's generic path
 * (path redaction, then a key-by-key serialisation of an object built for it) cost 57 µs a line with our 36
 * redact paths and still 7–14 µs without them; a fixed-shape line is a handful of JSON.stringify calls on
 * strings. Every other log line goes through pino, with its redaction.
 */
interface PinoInternals {
  /** The logger's bindings, serialised: `,"service":"egress-authz","worker":1`. */
  readonly chindings: string;
  readonly stream: { write(line: string): unknown };
}

function internalsOf(logger: Logger): PinoInternals {
  const l = logger as unknown as Record<symbol, unknown>;
  return {
    chindings: String(l[pino.symbols.chindingsSym] ?? ''),
    stream: l[pino.symbols.streamSym] as PinoInternals['stream'],
  };
}

const internals = new WeakMap<Logger, PinoInternals>();

/** ISO time of a millisecond, formatted once per millisecond (many lines share one). */
let isoMs = 0;
let isoText = '';
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/**
 * JSON text of the strings that repeat from line to line (policy names, identities, evaluators, reasons):
 * escaped once, then looked up. Bounded in count and length: a flood of distinct values empties it rather
 * than growing it.
 */
const QUOTED_MAX = 4096;
const QUOTED_MAX_LENGTH = 256;
const quotedCache = new Map<string, string>();
function quoted(value: string): string {
  if (value.length > QUOTED_MAX_LENGTH) return JSON.stringify(value);
  let text = quotedCache.get(value);
  if (text === undefined) {
    if (quotedCache.size >= QUOTED_MAX) quotedCache.clear();
    quotedCache.set(value, (text = JSON.stringify(value)));
  }
  return text;
}

/** `,"key":value` for a defined value; strings and string lists through JSON.stringify (escaping). */
function field(key: string, value: string | number | readonly string[] | undefined): string {
  if (value === undefined) return '';
  return `,"${key}":${typeof value === 'number' ? String(value) : JSON.stringify(value)}`;
}

/** `,"key":value` for a string that repeats across lines. */
function repeatedField(key: string, value: string | undefined): string {
  return value === undefined ? '' : `,"${key}":${quoted(value)}`;
}

/** One decision, rendered into its line when the batch it is in is written. */
class DecisionLine implements DeferredLine {
  constructor(
    private readonly chindings: string,
    private readonly timeMs: number,
    private readonly view: RequestView,
    private readonly outcome: CheckOutcome,
    private readonly durationMs: number,
    private readonly debug: boolean,
  ) {}

  render(): string {
    const { view, outcome } = this;
    const d = outcome.decision;
    const s = outcome.secrets;
    const allowed = d.kind === 'allow';
    let line =
      `{"level":"info","time":"${isoAt(this.timeMs)}"${this.chindings}` +
      field('requestId', view.requestId || undefined) +
      repeatedField('policy', d.policy || undefined) +
      repeatedField('identity', d.identity ? scrubSecrets(d.identity, s) : undefined) +
      field('source', view.source.address || undefined) +
      field('principal', view.source.principal || undefined) +
      repeatedField('method', view.method) +
      repeatedField('host', view.host) +
      field('path', scrubSecrets(view.path, s)) +
      repeatedField('decision', d.kind) +
      field('status', allowed ? 200 : d.status) +
      repeatedField('reason', scrubSecrets(d.reason, s)) +
      repeatedField('evaluator', d.evaluator) +
      // Names only: the values of injected headers are credentials more often than not.
      field('injected', allowed && d.headers.length ? d.headers.map((h) => h.key) : undefined) +
      field('removed', allowed && d.headersToRemove.length ? d.headersToRemove : undefined) +
      field('durationMs', Math.round(this.durationMs * 1000) / 1000);
    if (this.debug) {
      // More context for debugging a policy, still without values that may carry credentials.
      const queryKeys = Object.keys(view.query);
      const contextKeys = Object.keys(view.contextExtensions);
      line +=
        field('headers', view.headerNames.filter((k) => !k.startsWith(':'))) +
        field('queryKeys', queryKeys.length ? queryKeys : undefined) +
        field('contextExtensions', contextKeys.length ? contextKeys : undefined) +
        field('streamId', view.streamId || undefined);
    }
    return `${line},"msg":"decision"}\n`;
  }
}

/**
 * Logs the decision of a Check. On the server's stdout (a BatchedLineStream) the line is rendered at the end
 * of the turn with the others; on any other destination, now.
 */
export function logDecision(logger: Logger, opts: DecisionLogOptions, view: RequestView, outcome: CheckOutcome, durationMs: number): void {
  if (!shouldLogDecision(opts, outcome.decision.kind === 'allow')) return;
  if (!logger.isLevelEnabled('info')) return;
  let pinoOf = internals.get(logger);
  if (!pinoOf) internals.set(logger, (pinoOf = internalsOf(logger)));
  const line = new DecisionLine(pinoOf.chindings, Date.now(), view, outcome, durationMs, logger.isLevelEnabled('debug'));
  if (pinoOf.stream instanceof BatchedLineStream) pinoOf.stream.writeDeferred(line);
  else pinoOf.stream.write(line.render());
}
