/**
 * Conversions CEL defines that @marcbachmann/cel-js 8.0.0 lacks:
 *   string(google.protobuf.Timestamp)  RFC 3339, UTC, fraction without trailing zeros
 *   int(google.protobuf.Timestamp)     seconds since the Unix epoch (rounded down)
 *   string(google.protobuf.Duration)   seconds with a fraction if any, then "s" ("6347s", "1.5s")
 * cel-js timestamps are JavaScript Dates, so a timestamp carries milliseconds, not nanoseconds.
 */
import type { Environment } from '@marcbachmann/cel-js';
import type { Duration } from '@marcbachmann/cel-js/evaluator';
import { formatDuration, formatTimestamp } from './format.js';

export function registerConversions(env: Environment): void {
  env
    .registerFunction('string(google.protobuf.Timestamp): string', (value: Date) => formatTimestamp(value))
    .registerFunction('int(google.protobuf.Timestamp): int', (value: Date) => BigInt(Math.floor(value.getTime() / 1000)))
    .registerFunction('string(google.protobuf.Duration): string', (value: Duration) => formatDuration(value));
}
