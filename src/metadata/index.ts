// The `metadata` section: named external sources (http, vault) fetched after identity, by priority.
import type { Stage } from '../pipeline/context.js';
import type { SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';

export function compileMetadata(node: YNode, _sc: SectionContext): Stage | undefined {
  if (!node.isNull) node.error('metadata sources are not available in this build');
  return undefined;
}
