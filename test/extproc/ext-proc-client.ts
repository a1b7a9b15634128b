// A test client for envoy.service.ext_proc.v3.ExternalProcessor/Process that plays Envoy's side of the
// bidirectional stream: send a ProcessingRequest, read the ProcessingResponse, half-close or cancel.
import * as grpc from '@grpc/grpc-js';
import {
  deserializeProcessingResponse,
  PROCESS_PATH,
  serializeProcessingRequest,
} from '../../src/extproc/codec.js';
import { EXT_AUTHZ_NAMESPACE } from '../../src/budget/grant.js';

export type ProcessingResponse = Record<string, unknown>;

export class ExtProcStream {
  private readonly responses: ProcessingResponse[] = [];
  private readonly waiters: Array<(response: ProcessingResponse | Error) => void> = [];
  private failure: Error | undefined;
  readonly status: Promise<grpc.StatusObject>;

  constructor(private readonly call: grpc.ClientDuplexStream<object, ProcessingResponse>) {
    call.on('data', (response: ProcessingResponse) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(response);
      else this.responses.push(response);
    });
    call.on('error', (error: Error) => {
      this.failure = error;
      for (const waiter of this.waiters.splice(0)) waiter(error);
    });
    this.status = new Promise((resolve) => call.on('status', resolve));
  }

  /** Sends one message and waits for the server's answer to it. */
  async send(message: object): Promise<ProcessingResponse> {
    this.call.write(message);
    return this.next();
  }

  /** Sends without waiting (observability mode, or to cancel in the middle). */
  write(message: object): void {
    this.call.write(message);
  }

  next(): Promise<ProcessingResponse> {
    const ready = this.responses.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) =>
      this.waiters.push((response) => (response instanceof Error ? reject(response) : resolve(response))),
    );
  }

  /** Half-closes (Envoy's end of the HTTP stream) and waits for the server to end the call. */
  async end(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.status;
  }

  cancel(): void {
    this.call.cancel();
  }

  /** Answers received but not read yet. */
  get unread(): number {
    return this.responses.length;
  }
}

export class ExtProcClient {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  open(): ExtProcStream {
    const call = this.client.makeBidiStreamRequest<object, ProcessingResponse>(
      PROCESS_PATH,
      serializeProcessingRequest,
      deserializeProcessingResponse,
      new grpc.Metadata(),
    );
    return new ExtProcStream(call);
  }

  close(): void {
    this.client.close();
  }
}

/** metadata_context as Envoy forwards it: the Check's dynamic_metadata under the ext_authz namespace. */
export function forwardedMetadata(checkDynamicMetadata: unknown): object {
  return { filterMetadata: { [EXT_AUTHZ_NAMESPACE]: checkDynamicMetadata } };
}

export function headerMap(headers: Record<string, string>): object {
  // Envoy sends raw_value (bytes) by default.
  return { headers: Object.entries(headers).map(([key, value]) => ({ key, rawValue: Buffer.from(value) })) };
}

export interface ReplayOptions {
  /** The Check's dynamic metadata (CheckResult.dynamicMetadata). */
  readonly metadata: unknown;
  readonly status?: number;
  readonly contentType?: string;
  readonly headers?: Record<string, string>;
  /** Body chunks as Envoy streams them (STREAMED mode). */
  readonly chunks: ReadonlyArray<string | Buffer>;
  /** Send request headers first (request_header_mode SEND). */
  readonly requestHeaders?: boolean;
}

/**
 * Plays one HTTP exchange through ext_proc as Envoy does, asserting nothing: returns the answers, in order.
 * The stream is half-closed at the end, like Envoy after the response.
 */
export async function replayResponse(client: ExtProcClient, options: ReplayOptions): Promise<ProcessingResponse[]> {
  const stream = client.open();
  const metadataContext = forwardedMetadata(options.metadata);
  const answers: ProcessingResponse[] = [];
  if (options.requestHeaders) {
    answers.push(
      await stream.send({
        requestHeaders: { headers: headerMap({ ':method': 'POST', ':path': '/v1/chat/completions' }), endOfStream: false },
        metadataContext,
      }),
    );
  }
  const headers: Record<string, string> = { ':status': String(options.status ?? 200), ...(options.headers ?? {}) };
  if (options.contentType !== undefined) headers['content-type'] = options.contentType;
  answers.push(
    await stream.send({
      responseHeaders: { headers: headerMap(headers), endOfStream: options.chunks.length === 0 },
      metadataContext,
    }),
  );
  for (const [index, chunk] of options.chunks.entries()) {
    answers.push(
      await stream.send({
        responseBody: { body: Buffer.from(chunk), endOfStream: index === options.chunks.length - 1 },
        metadataContext,
      }),
    );
  }
  await stream.end();
  return answers;
}

/** Splits a text into chunks of `size` bytes (to exercise parsers across chunk boundaries). */
export function chunked(text: string, size: number): Buffer[] {
  const bytes = Buffer.from(text);
  const out: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) out.push(bytes.subarray(offset, offset + size));
  return out;
}
