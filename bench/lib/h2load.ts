// Drives a gRPC unary endpoint with h2load: a pre-framed request body (5-byte gRPC prefix + message),
// `content-type: application/grpc` and `te: trailers`, over HTTP/2 cleartext with prior knowledge.
// Latencies come from h2load's per-request log (h2load itself prints no percentiles).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CHECK_PATH } from '../../src/envoy/codec.js';
import { mean, percentile } from './stats.js';

export const H2LOAD = '/usr/bin/h2load';

/** gRPC length-prefixed message: 1 byte "not compressed", 4 bytes big-endian length, the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message.buffer, message.byteOffset, message.length).copy(frame, 5);
  return frame;
}

export interface LoadShape {
  /** HTTP/2 connections (Envoy opens one per worker thread toward an ext_authz cluster). */
  connections: number;
  /** Concurrent streams per connection; connections × streams = requests in flight. */
  streamsPerConnection: number;
}

export interface LoadResult {
  requests: number;
  succeeded: number;
  /** Requests h2load counted failed, errored or timed out, plus non-2xx HTTP statuses. */
  failed: number;
  rps: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface RunOptions {
  grpcAddr: string;
  bodyFile: string;
  shape: LoadShape;
  requests: number;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export async function runH2load(opts: RunOptions): Promise<LoadResult> {
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'egress-authz-h2load-')), 'requests.log');
  try {
    const { connections, streamsPerConnection } = opts.shape;
    const stdout = await run(H2LOAD, [
      '-n', String(opts.requests),
      '-c', String(connections),
      '-m', String(streamsPerConnection),
      '-t', '1',
      '-d', opts.bodyFile,
      '-H', 'content-type: application/grpc',
      '-H', 'te: trailers',
      `--log-file=${logFile}`,
      `http://${opts.grpcAddr}${CHECK_PATH}`,
    ]);
    return parse(stdout, fs.readFileSync(logFile, 'utf8'));
  } finally {
    fs.rmSync(path.dirname(logFile), { recursive: true, force: true });
  }
}

function parse(stdout: string, log: string): LoadResult {
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  if (!finished || !counts || !statuses) throw new Error(`unexpected h2load output:\n${stdout}`);
  // Log lines: start time (µs since epoch) \t HTTP status \t µs until the end of the response.
  const lines = log.split('\n').filter(Boolean);
  const latencies = new Float64Array(lines.length);
  for (let i = 0; i < lines.length; i++) latencies[i] = Number(lines[i]!.split('\t')[2]) / 1000;
  latencies.sort();
  const succeeded = Number(counts[4]);
  const non2xx = Number(statuses[2]) + Number(statuses[3]) + Number(statuses[4]);
  return {
    requests: Number(counts[1]),
    succeeded,
    failed: Number(counts[5]) + Number(counts[6]) + Number(counts[7]) + non2xx,
    rps: Number(finished[3]),
    meanMs: mean(latencies),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.length ? latencies[latencies.length - 1]! : NaN,
  };
}
