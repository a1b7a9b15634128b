/**
 * CEL extensions for egress-authz's environment, on top of @marcbachmann/cel-js 8.0.0:
 * cel-go's string extension (strings.ts, format.ts), cel-go's base64 encoders (base64.ts) and
 * the Kubernetes url/ip/cidr libraries (network.ts), and conversions cel-js lacks
 * (string/int of timestamps, string of durations: conversions.ts; optional.ofNonZeroValue and
 * optional equality: optionals.ts; timestamp accessors with fixed-offset zones: time-zones.ts).
 * See docs/cel-extensions.md.
 *
 * Call once on a fresh Environment, before registering variables:
 *   registerExtensions(new Environment({ enableOptionalTypes: true, homogeneousAggregateLiterals: false }))
 * The names it claims as constants are `strings`, `base64` and `ip`.
 */
import type { Environment } from '@marcbachmann/cel-js';
import { registerBase64 } from './base64.js';
import { registerConversions } from './conversions.js';
import { registerNetwork } from './network.js';
import { registerOptionals } from './optionals.js';
import { registerStrings } from './strings.js';
import { registerTimeZones } from './time-zones.js';

export function registerExtensions(env: Environment): Environment {
  registerStrings(env);
  registerBase64(env);
  registerNetwork(env);
  registerConversions(env);
  registerOptionals(env);
  registerTimeZones(env);
  return env;
}
