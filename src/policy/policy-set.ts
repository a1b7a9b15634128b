// The active set of compiled policies and the selection of the one that governs a request:
// context extension `policy` (by name) → exact host → longest `*.` wildcard → global (Kyverno) policies →
// the default rule. Immutable: a reload builds a new set; in-flight Checks keep the set they started with.
import type { RequestView } from '../envoy/request-view.js';
import type { CompiledPolicy } from './policy.js';

/** Lower-case host or `*.suffix`; undefined when not a valid pattern. */
export function normalizeHostPattern(raw: string): string | undefined {
  const h = raw.trim().toLowerCase().replace(/\.$/, '');
  if (/^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(h)) return h;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(h)) return h;
  if (/^[0-9a-f:]+$/.test(h) && h.includes(':')) return h;
  return undefined;
}

export type Selection =
  | { kind: 'policy'; policy: CompiledPolicy; via: 'context' | 'host' | 'wildcard' }
  | { kind: 'global'; policies: readonly CompiledPolicy[] }
  | { kind: 'unknown-context'; name: string; ambiguous?: boolean }
  | { kind: 'none' };

const AMBIGUOUS = Symbol('ambiguous policy name');

export class PolicySet {
  private readonly exact = new Map<string, CompiledPolicy>();
  /** [suffix without "*", policy], longest suffix first. */
  private readonly wildcards: Array<[string, CompiledPolicy]> = [];
  private readonly byName = new Map<string, CompiledPolicy | typeof AMBIGUOUS>();

  constructor(
    readonly policies: readonly CompiledPolicy[],
    readonly globals: readonly CompiledPolicy[],
    readonly documentCount: number,
  ) {
    for (const p of [...policies, ...globals]) {
      for (const n of p.contextNames) {
        const prev = this.byName.get(n);
        // A name two different policies answer to (same name in two namespaces, say) selects neither:
        // the route must use namespace/name. Load order never decides.
        if (prev === undefined) this.byName.set(n, p);
        else if (prev !== p) this.byName.set(n, AMBIGUOUS);
      }
      for (const h of p.hosts) {
        if (h.startsWith('*.')) this.wildcards.push([h.slice(1), p]);
        else this.exact.set(h, p);
      }
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  get size(): number {
    return this.policies.length + this.globals.length;
  }

  select(view: RequestView): Selection {
    const named = view.contextExtensions['policy'];
    if (named) {
      const p = this.byName.get(named);
      if (p === AMBIGUOUS) return { kind: 'unknown-context', name: named, ambiguous: true };
      return p ? { kind: 'policy', policy: p, via: 'context' } : { kind: 'unknown-context', name: named };
    }
    const exact = this.exact.get(view.host);
    if (exact) return { kind: 'policy', policy: exact, via: 'host' };
    for (const [suffix, p] of this.wildcards) {
      if (view.host.endsWith(suffix) && view.host.length > suffix.length) return { kind: 'policy', policy: p, via: 'wildcard' };
    }
    if (this.globals.length) return { kind: 'global', policies: this.globals };
    return { kind: 'none' };
  }
}
