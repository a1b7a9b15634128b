// The `authentication` section: named identity methods tried in priority order; first success wins.
// Each method kind lives in its own file; this module only dispatches.
import type { Stage } from '../pipeline/context.js';
import type { SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import { compileIdentityStage } from './stage.js';

export function compileAuthentication(node: YNode, sc: SectionContext): Stage | undefined {
  return compileIdentityStage(node, sc);
}
