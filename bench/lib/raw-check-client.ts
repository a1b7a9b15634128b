// A minimal gRPC client for timing Checks: one HTTP/2 session (node:http2), pre-framed request bodies, and
// only the answer's status read back. grpc-js' own client costs about a millisecond per call in the calling
// process, which would swamp the server-side latencies the cold-path benchmark is about.
import http2 from 'node:http2';
import { buildCheckRequest, type CheckRequestInput } from '../../src/cli/check-client.js';
import { CheckResponseType, serializeCheckRequest } from '../../src/envoy/codec.js';
import { CHECK_PATH } from '../../src/envoy/codec.js';
import { grpcFrame } from './h2load.js';

export interface RawAnswer {
  /** ms from sending the request to the end of the answer. */
  ms: number;
  /** HTTP status the Check decided (200 = allow), or undefined when the call itself failed. */
  httpStatus?: number;
  /** Transport-level failure (gRPC status, stream error). */
  error?: string;
}

interface DecodedResponse {
  status?: { code?: number };
  deniedResponse?: { status?: { code?: number } };
}

export class RawCheckClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(grpcAddr: string) {
    this.session = http2.connect(`http://${grpcAddr}`);
    this.session.on('error', () => undefined);
  }

  /** The gRPC frame for a request (build these before timing anything). */
  static frame(input: CheckRequestInput): Buffer {
    return grpcFrame(serializeCheckRequest(buildCheckRequest(input)));
  }

  check(frame: Buffer, timeoutMs = 10_000): Promise<RawAnswer> {
    const t0 = performance.now();
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let done = false;
      const finish = (a: Omit<RawAnswer, 'ms'>) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ ms: performance.now() - t0, ...a });
      };
      const stream = this.session.request({
        ':method': 'POST',
        ':path': CHECK_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const timer = setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        finish({ error: `no answer within ${timeoutMs / 1000} s` });
      }, timeoutMs);
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => finish({ error: err.message }));
      stream.on('trailers', (trailers) => {
        const grpcStatus = Number(trailers['grpc-status'] ?? -1);
        if (grpcStatus !== 0) return finish({ error: `gRPC status ${grpcStatus}` });
        const body = Buffer.concat(chunks);
        const msg = CheckResponseType.decode(body.subarray(5)) as unknown as DecodedResponse;
        const code = msg.status?.code ?? 0;
        finish({ httpStatus: code === 0 ? 200 : (msg.deniedResponse?.status?.code ?? 403) });
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}
