// Durations in metadata config: a number is seconds (Kuadrant's `cache.ttl`), a string has a unit
// ("500ms", "30s", "5m", "1h").
import { parseDuration } from '../config.js';
import type { YNode } from '../policy/yaml-node.js';

export function readDurationMs(node: YNode | undefined, what: string, defaultMs: number): number {
  if (!node || node.isNull) return defaultMs;
  let ms: number | undefined;
  const raw = node.toJS();
  if (typeof raw === 'number') {
    ms = Math.round(raw * 1000);
  } else {
    const text = node.string(`${what}: a duration (seconds, or "500ms", "30s", "5m")`);
    if (text === undefined) return defaultMs;
    try {
      ms = parseDuration(text.trim().replace(/^(\d+(?:\.\d+)?)$/, '$1s'), what);
    } catch (err) {
      node.error((err as Error).message);
      return defaultMs;
    }
  }
  if (!(ms > 0)) {
    node.error(`${what} must be longer than 0`);
    return defaultMs;
  }
  return ms;
}
