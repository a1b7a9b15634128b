// Directory → PolicySet, collecting every error (for `serve` start-up, reloads and `lint`).
import { Diagnostics, PolicyLoadError, type Diagnostic } from './diagnostics.js';
import { readPolicyDirectory } from './document.js';
import { compilePolicySet } from './compile.js';
import type { PolicySet } from './policy-set.js';
import type { Services } from '../pipeline/services.js';

export type LoadResult = { ok: true; set: PolicySet } | { ok: false; diagnostics: readonly Diagnostic[] };

export function loadPolicyDirectory(dir: string, services: Services): LoadResult {
  const diags = new Diagnostics();
  const docs = readPolicyDirectory(dir, diags);
  try {
    const set = compilePolicySet(docs, services, diags);
    if (diags.hasErrors) return { ok: false, diagnostics: diags.list };
    return { ok: true, set };
  } catch (err) {
    if (err instanceof PolicyLoadError) return { ok: false, diagnostics: err.diagnostics };
    throw err;
  }
}
