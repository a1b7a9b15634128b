// The contract every identity method implements.
import type { CheckContext } from '../pipeline/context.js';
import type { CelProgram } from '../cel/compile.js';
import type { SectionContext } from '../pipeline/section.js';
import type { YNode } from '../policy/yaml-node.js';
import type { CredentialSource } from './credentials.js';

export type IdentityOutcome =
  /** Authenticated. `label` is a short non-secret name for logs (username / principal). */
  | {
      kind: 'ok';
      identity: Record<string, unknown>;
      label: string;
      credential?: string;
      /** The credential is a Kubernetes ServiceAccount token: only such a token may be handed to Vault's
       *  Kubernetes auth on the workload's behalf (never an API key or another issuer's JWT). */
      serviceAccountToken?: boolean;
    }
  /** This method found no credential of its kind in the request. */
  | { kind: 'missing' }
  /** A credential was present but is invalid, expired or for another audience → 401. */
  | { kind: 'invalid'; reason: string }
  /** The backend needed to decide is down or too slow → 503 (fail closed). */
  | { kind: 'unavailable'; reason: string };

export interface IdentityMethod {
  readonly name: string;
  readonly kind: string;
  readonly priority: number;
  readonly when: readonly CelProgram[];
  /**
   * The WWW-Authenticate challenge for 401 answers (e.g. `Bearer realm="egress-authz"`; '' for none). When this
   * method rejected a credential, the stage adds `error="invalid_token"` (RFC 6750).
   */
  readonly challenge: string;
  authenticate(ctx: CheckContext): IdentityOutcome | Promise<IdentityOutcome>;
}

export interface MethodCompileInput {
  readonly name: string;
  /** The method's own config node (e.g. the value under `kubernetesTokenReview:`). */
  readonly config: YNode;
  readonly credentials: CredentialSource;
  /** The method entry's `cache.ttl` (Kuadrant), in ms: caps how long a backend's verdict is cached. */
  readonly cacheTtlMs?: number;
  readonly sc: SectionContext;
}

/** Builds the per-request part of a method once, at policy load. */
export type IdentityMethodFactory = (input: MethodCompileInput) => Omit<
  IdentityMethod,
  'name' | 'priority' | 'when'
> | undefined;
