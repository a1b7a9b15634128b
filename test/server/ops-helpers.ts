// Helpers for the operations tests: gRPC health client, Prometheus text parsing, a load pump that keeps N
// checks in flight, a check client with its own connection, and waiting for a condition.
import * as grpc from '@grpc/grpc-js';
import { CHECK_PATH, HealthCheckRequestType, HealthCheckResponseType, deserializeCheckResponse, serializeCheckRequest } from '../../src/envoy/codec.js';
import { buildCheckRequest, interpretCheckResponse, type CheckRequestInput, type CheckResult } from '../../src/cli/check-client.js';

export const SERVING = 1;
export const NOT_SERVING = 2;

/** Polls `cond` until it is truthy (or throws after `timeoutMs`). Waits for behavior, asserts nothing about time. */
export async function waitFor<T>(cond: () => T | Promise<T>, what: string, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function decodeHealth(b: Buffer): number {
  return (HealthCheckResponseType.toObject(HealthCheckResponseType.decode(b), { enums: Number }) as { status?: number }).status ?? 0;
}

export function healthCheck(addr: string, service = ''): Promise<number> {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  return new Promise<number>((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (v: { service: string }) => Buffer.from(HealthCheckRequestType.encode(v).finish()),
      decodeHealth,
      { service },
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, status) => (err ? reject(err) : resolve(status!)),
    );
  }).finally(() => client.close());
}

/** Opens a Health/Watch stream; `statuses` collects every status the server sends. */
export function healthWatch(addr: string): { statuses: number[]; ended: () => boolean; close(): void } {
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  const statuses: number[] = [];
  let ended = false;
  const call = client.makeServerStreamRequest(
    '/grpc.health.v1.Health/Watch',
    (v: { service: string }) => Buffer.from(HealthCheckRequestType.encode(v).finish()),
    decodeHealth,
    { service: '' },
  );
  call.on('data', (s: number) => statuses.push(s));
  call.on('error', () => (ended = true));
  call.on('end', () => (ended = true));
  return {
    statuses,
    ended: () => ended,
    close() {
      call.cancel();
      client.close();
    },
  };
}

/**
 * A CheckClient on its own HTTP/2 connection: grpc-js shares connections between clients of one target unless
 * told otherwise, and with `serve --workers` each connection lands on one worker.
 */
export class SeparateConnectionClient {
  private readonly client: grpc.Client;
  constructor(addr: string) {
    this.client = new grpc.Client(addr, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  }
  check(r: CheckRequestInput, deadlineMs = 10_000): Promise<CheckResult> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        CHECK_PATH,
        (b: Buffer) => b,
        deserializeCheckResponse,
        serializeCheckRequest(buildCheckRequest(r)),
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(err) : resolve(interpretCheckResponse(res!))),
      );
    });
  }
  close(): void {
    this.client.close();
  }
}

export interface PumpRecord<Tag> {
  readonly tag: Tag;
  readonly result?: CheckResult;
  readonly error?: grpc.ServiceError;
}

/**
 * Keeps `concurrency` checks in flight (a finished check starts the next one) until stop() is called.
 * `tagAtStart` is evaluated when each check is sent (e.g. the policy generation the server had then).
 */
export function startPump<Tag>(
  send: () => Promise<CheckResult>,
  concurrency: number,
  tagAtStart: () => Tag,
): { records: PumpRecord<Tag>[]; outstanding: () => number; stop(): Promise<PumpRecord<Tag>[]> } {
  const records: PumpRecord<Tag>[] = [];
  let stopped = false;
  let outstanding = 0;
  let drained: () => void = () => {};
  const allDone = new Promise<void>((r) => (drained = r));
  const one = () => {
    const tag = tagAtStart();
    outstanding++;
    send().then(
      (result) => records.push({ tag, result }),
      (error: grpc.ServiceError) => records.push({ tag, error }),
    ).finally(() => {
      outstanding--;
      if (!stopped) one();
      else if (outstanding === 0) drained();
    });
  };
  for (let i = 0; i < concurrency; i++) one();
  return {
    records,
    outstanding: () => outstanding,
    async stop() {
      stopped = true;
      if (outstanding > 0) await allDone;
      return records;
    },
  };
}

/** Prometheus text → value per series ("name{a=\"b\"}" exactly as exposed, label order as written). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{.*\})?)\s+(\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The value of the series with exactly these labels (any order); undefined when not exposed. */
export function seriesValue(series: Map<string, number>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const [key, value] of series) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(key);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v) && have.size === Object.keys(labels).length) return value;
  }
  return undefined;
}
