// The `metadata` section: named external sources fetched after identity, by priority (lower first; equal
// priorities run concurrently), each with an optional `when` and (http) `cache`; results at
// auth.metadata.<name>. One file per source kind; this module reads the common fields and dispatches.
import type { Stage } from '../pipeline/context.js';
import { compileWhen, type SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import { httpSource } from './http.js';
import { compileResponseCache } from './response-cache.js';
import type { MetadataSource, MetadataSourceFactory } from './source.js';
import { metadataStage } from './stage.js';
import { vaultSource } from './vault.js';

export const METADATA_SOURCES: Readonly<Record<string, MetadataSourceFactory>> = {
  http: httpSource,
  vault: vaultSource,
};

const COMMON_KEYS = ['priority', 'when', 'cache', 'metrics'];
/** Kuadrant kinds we recognise but do not implement: a clear error beats "unknown field". */
const UNSUPPORTED_KINDS = ['userInfo', 'uma'];

export function compileMetadata(node: YNode, sc: SectionContext): Stage | undefined {
  const sources: MetadataSource[] = [];
  const known = Object.keys(METADATA_SOURCES);
  for (const [name, cfg] of node.entries('metadata: a map of named sources')) {
    const what = `metadata "${name}"`;
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) cfg.error(`${what}: a name must start with a letter or _ and use letters, digits, _ or -`);
    const kinds = cfg.entries(what).filter(([k]) => !COMMON_KEYS.includes(k));
    const unsupported = kinds.find(([k]) => UNSUPPORTED_KINDS.includes(k));
    if (unsupported) {
      unsupported[1].error(`${what}: "${unsupported[0]}" metadata is not supported; use http or vault`);
      continue;
    }
    if (kinds.length !== 1 || !METADATA_SOURCES[kinds[0]![0]]) {
      cfg.checkKeys([...known, ...COMMON_KEYS], what);
      if (kinds.length !== 1) cfg.error(`${what}: give exactly one source kind (${known.join(', ')})`);
      continue;
    }
    const [kind, kindCfg] = kinds[0]!;
    const built = METADATA_SOURCES[kind]!({
      name,
      config: kindCfg,
      cache: compileResponseCache(cfg.get('cache'), `${what}.cache`, sc),
      sc,
    });
    if (!built) continue;
    sources.push({
      ...built,
      name,
      priority: cfg.get('priority')?.number(`${what}.priority`) ?? 0,
      when: compileWhen(cfg.get('when'), `${what}.when`, sc),
    });
  }
  if (sources.length === 0) return undefined;
  return metadataStage(sc.policy, sources, sc.services.logger);
}
