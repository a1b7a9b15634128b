// The `rateLimits` section (and Kuadrant RateLimitPolicy `limits`).
import type { Stage } from '../pipeline/context.js';
import type { SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';

export function compileRateLimits(node: YNode, _sc: SectionContext): Stage | undefined {
  if (!node.isNull) node.error('rate limits are not available in this build');
  return undefined;
}
