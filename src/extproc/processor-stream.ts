// The state of one ext_proc stream (= one HTTP request/response through Envoy): the budget grant Envoy
// forwarded from the Check, and the usage reader of the response body. Bounded: the reader keeps a few
// bytes of parser state and the captured usage values, never the body. `end()` hands back what the
// response said and drops the reader, so a stream's memory is freed as soon as its body is done.
import type { ProtoHeaderValue, ProtoMetadata } from '../envoy/codec.js';
import { readGrant, type BudgetGrant } from '../budget/grant.js';
import type { ResponseEnd } from '../budget/settlement.js';
import { ResponseUsageReader } from './usage/response-reader.js';
import type { ProtoHttpHeaders } from './codec.js';

export class ProcessorStream {
  private grantValue: BudgetGrant | undefined;
  private reader: ResponseUsageReader | undefined;
  private status: number | undefined;
  private ended = false;

  constructor(readonly id: number) {}

  get grant(): BudgetGrant | undefined {
    return this.grantValue;
  }

  /** Every message may carry metadata_context; the first valid grant is kept. */
  onMetadata(metadata: ProtoMetadata | null | undefined): void {
    if (this.grantValue === undefined && metadata) this.grantValue = readGrant(metadata);
  }

  onResponseHeaders(message: ProtoHttpHeaders): void {
    if (this.ended || this.grantValue === undefined) return;
    const headers = message.headers?.headers ?? [];
    const status = Number(headerValue(headers, ':status'));
    this.status = Number.isInteger(status) && status > 0 ? status : undefined;
    this.reader = new ResponseUsageReader(
      { contentType: headerValue(headers, 'content-type'), contentEncoding: headerValue(headers, 'content-encoding') },
      this.grantValue.provider,
    );
  }

  onResponseBody(chunk: Uint8Array): void {
    if (this.ended || this.grantValue === undefined) return;
    // Response headers may not be sent to us (response_header_mode SKIP): the body's first byte decides.
    this.reader ??= new ResponseUsageReader({}, this.grantValue.provider);
    this.reader.write(chunk);
  }

  /**
   * The response is over (`complete`: its end was seen) or the stream is (cancelled, closed early).
   * Returns what to settle once; undefined when there is nothing to settle (no grant, or already done).
   */
  end(complete: boolean): ResponseEnd | undefined {
    if (this.ended) return undefined;
    this.ended = true;
    const reader = this.reader;
    this.reader = undefined;
    if (this.grantValue === undefined) return undefined;
    return { reading: reader?.finish(), complete, ...(this.status !== undefined ? { status: this.status } : {}) };
  }
}

/** A header's value: Envoy sends raw_value (bytes) by default, `value` with older runtime settings. */
function headerValue(headers: readonly ProtoHeaderValue[], name: string): string | undefined {
  for (const header of headers) {
    if (header.key?.toLowerCase() !== name) continue;
    if (header.rawValue && header.rawValue.length > 0) return Buffer.from(header.rawValue).toString('latin1');
    return header.value ?? '';
  }
  return undefined;
}
