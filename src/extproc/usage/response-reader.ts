// Reads the token usage out of one response body as it streams past: picks JSON or SSE from the response
// headers (or, without a content-type, from the first byte), feeds the bytes to a bounded streaming parser,
// and keeps a tally of the counts seen so far. Never holds the body; never changes it.
import { anthropicFormat } from './anthropic.js';
import { geminiFormat } from './gemini.js';
import { JsonFieldScanner, type CapturedFields } from './json-scanner.js';
import { openaiFormat } from './openai.js';
import { SseUsageReader } from './sse.js';
import type { ProviderName, TokenUsage, UsageFormat } from './types.js';

export type ProviderChoice = ProviderName | 'auto';

export const USAGE_FORMATS: Readonly<Record<ProviderName, UsageFormat>> = {
  openai: openaiFormat,
  anthropic: anthropicFormat,
  gemini: geminiFormat,
};

/** Tried in this order when the policy says `auto`. */
const DETECTION_ORDER: readonly UsageFormat[] = [geminiFormat, anthropicFormat, openaiFormat];

export type BodyKind = 'json' | 'sse' | 'other' | 'encoded';

/** Why a body yielded no usage. */
export type NoUsageReason = 'not-json' | 'encoded' | 'no-usage' | 'too-deep';

export interface UsageReading {
  /** Counts seen so far; absent counts were not reported. */
  readonly usage: TokenUsage | undefined;
  /** The provider format the usage was read with. */
  readonly provider: ProviderName | undefined;
  readonly kind: BodyKind;
  /** Set when `usage` is undefined. */
  readonly reason?: NoUsageReason;
}

export interface ResponseHeadersInfo {
  readonly contentType?: string;
  readonly contentEncoding?: string;
}

/** The body kind from the response headers; undefined when it must be sniffed from the first byte. */
export function bodyKindOf(headers: ResponseHeadersInfo): BodyKind | undefined {
  const encoding = (headers.contentEncoding ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') return 'encoded';
  const type = (headers.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === '') return undefined;
  if (type === 'text/event-stream') return 'sse';
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  return 'other';
}

class UsageTally {
  input: number | undefined;
  output: number | undefined;
  total: number | undefined;
  provider: ProviderName | undefined;

  /** Every provider reports running totals, so a later report replaces an earlier one, count by count. */
  merge(usage: TokenUsage, provider: ProviderName): void {
    this.provider ??= provider;
    if (usage.input !== undefined) this.input = usage.input;
    if (usage.output !== undefined) this.output = usage.output;
    if (usage.total !== undefined) this.total = usage.total;
  }

  get usage(): TokenUsage | undefined {
    if (this.input === undefined && this.output === undefined && this.total === undefined) return undefined;
    return {
      ...(this.input !== undefined ? { input: this.input } : {}),
      ...(this.output !== undefined ? { output: this.output } : {}),
      ...(this.total !== undefined ? { total: this.total } : {}),
    };
  }
}

export class ResponseUsageReader {
  private kind: BodyKind | undefined;
  private readonly formats: readonly UsageFormat[];
  private readonly paths: readonly string[];
  private readonly tally = new UsageTally();
  private json: JsonFieldScanner | undefined;
  private sse: SseUsageReader | undefined;
  private gaveUp = false;
  private finished = false;

  constructor(
    headers: ResponseHeadersInfo,
    private readonly provider: ProviderChoice,
  ) {
    this.kind = bodyKindOf(headers);
    this.formats = provider === 'auto' ? DETECTION_ORDER : [USAGE_FORMATS[provider]];
    this.paths = [...new Set(this.formats.flatMap((format) => format.paths))];
    if (this.kind !== undefined) this.start(this.kind);
  }

  write(chunk: Uint8Array): void {
    if (this.finished || chunk.length === 0) return;
    if (this.kind === undefined) {
      const first = chunk.find((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
      if (first === undefined) return; // only whitespace so far
      this.kind = sniff(first);
      this.start(this.kind);
    }
    if (this.json) this.json.write(chunk);
    else if (this.sse) this.sse.write(chunk);
  }

  /** The body ended: reads what is left and frees the parser. */
  finish(): UsageReading {
    if (!this.finished) {
      this.finished = true;
      if (this.json) {
        this.gaveUp = this.json.gaveUp;
        this.take(this.json.end());
      }
      this.sse?.end();
      this.json = undefined;
      this.sse = undefined;
    }
    return this.reading();
  }

  /** What the body said so far (a body cut short is read with `finish()` too: complete values count). */
  reading(): UsageReading {
    const usage = this.tally.usage;
    const kind = this.kind ?? 'other';
    if (usage !== undefined) return { usage, provider: this.tally.provider, kind };
    const reason: NoUsageReason =
      kind === 'encoded' ? 'encoded' : kind === 'other' ? 'not-json' : this.gaveUp ? 'too-deep' : 'no-usage';
    return { usage: undefined, provider: undefined, kind, reason };
  }

  private start(kind: BodyKind): void {
    if (kind === 'json') this.json = new JsonFieldScanner(this.paths);
    else if (kind === 'sse') this.sse = new SseUsageReader(this.paths, (event) => this.take(event.fields));
  }

  private take(fields: CapturedFields): void {
    if (fields.size === 0) return;
    const format = this.formatFor(fields);
    const usage = format?.usageOf(fields);
    if (format && usage) this.tally.merge(usage, format.name);
  }

  private formatFor(fields: CapturedFields): UsageFormat | undefined {
    if (this.formats.length === 1) return this.formats[0];
    // Once a stream is known to be one provider's, every later event is read the same way.
    if (this.tally.provider) return USAGE_FORMATS[this.tally.provider];
    return (
      this.formats.find((format) => format.recognizes(fields)) ??
      this.formats.find((format) => format.usageOf(fields) !== undefined)
    );
  }
}

function sniff(firstByte: number): BodyKind {
  if (firstByte === 0x7b || firstByte === 0x5b) return 'json'; // { [
  if (firstByte === 0x64 || firstByte === 0x65 || firstByte === 0x3a) return 'sse'; // d(ata:) e(vent:) :comment
  return 'other';
}
