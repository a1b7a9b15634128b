// protobufjs codec for envoy.service.ext_proc.v3 (proto/ext_proc.proto): the encode/decode functions of the
// ExternalProcessor service on our gRPC transport, and the serialize/deserialize of the grpc-js test client.
import path from 'node:path';
import protobuf from 'protobufjs';
import { loadProtoRoot, type ProtoHeaderValue, type ProtoMetadata } from '../envoy/codec.js';

const root = loadProtoRoot(['ext_proc.proto']);
export const ProcessingRequestType = root.lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
export const ProcessingResponseType = root.lookupType('envoy.service.ext_proc.v3.ProcessingResponse');

export const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
export const EXT_PROC_SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

// --- Shapes of decoded messages (protobufjs camelCase names); only what we read. ---
export interface ProtoHttpHeaders {
  headers?: { headers?: ProtoHeaderValue[] } | null;
  endOfStream?: boolean;
}
export interface ProtoHttpBody {
  body?: Uint8Array;
  endOfStream?: boolean;
}
export type ProcessingRequestKind =
  | 'requestHeaders'
  | 'responseHeaders'
  | 'requestBody'
  | 'responseBody'
  | 'requestTrailers'
  | 'responseTrailers';

export interface ProtoProcessingRequest {
  /** Which member of the `request` oneof is set (protobufjs' virtual oneof property). */
  request?: ProcessingRequestKind;
  requestHeaders?: ProtoHttpHeaders | null;
  responseHeaders?: ProtoHttpHeaders | null;
  requestBody?: ProtoHttpBody | null;
  responseBody?: ProtoHttpBody | null;
  metadataContext?: ProtoMetadata | null;
  observabilityMode?: boolean;
}

/** A message that failed to decode: the stream ends with INVALID_ARGUMENT instead of crashing. */
export class ExtProcDecodeError extends Error {}

/** A throwing decoder would end the stream INTERNAL; decode failures are values, answered INVALID_ARGUMENT. */
export function deserializeProcessingRequest(buf: Buffer): ProtoProcessingRequest | ExtProcDecodeError {
  try {
    return ProcessingRequestType.decode(buf) as unknown as ProtoProcessingRequest;
  } catch (err) {
    // Never echo input bytes: only the decoder's structural complaint.
    return new ExtProcDecodeError(`malformed ProcessingRequest: ${(err as Error).message}`);
  }
}

export function serializeProcessingResponse(msg: object): Buffer {
  return Buffer.from(ProcessingResponseType.encode(ProcessingResponseType.fromObject(msg)).finish());
}

// --- For clients (tests, tools): the other direction. ---
export function serializeProcessingRequest(msg: object): Buffer {
  return Buffer.from(ProcessingRequestType.encode(ProcessingRequestType.fromObject(msg)).finish());
}

export function deserializeProcessingResponse(buf: Buffer): Record<string, unknown> {
  return ProcessingResponseType.toObject(ProcessingResponseType.decode(buf), {
    enums: String,
    longs: Number,
    defaults: false,
    oneofs: true,
  }) as Record<string, unknown>;
}
