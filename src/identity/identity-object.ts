// Helpers shared by the identity methods: the convenience fields (username, namespace, serviceAccount) every
// method exposes the same way, immutability of cached values, and file paths named in policies.
import path from 'node:path';
import type { YNode } from '../policy/yaml-node.js';

const SERVICE_ACCOUNT_USERNAME = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** `system:serviceaccount:<ns>:<name>` → its parts; undefined for any other user name. */
export function serviceAccountOf(username: string | undefined): { namespace: string; serviceAccount: string } | undefined {
  const m = username ? SERVICE_ACCOUNT_USERNAME.exec(username) : null;
  return m ? { namespace: m[1]!, serviceAccount: m[2]! } : undefined;
}

/**
 * The convenience fields beside the raw identity: `username`, and `namespace` / `serviceAccount` ('' when the
 * user is not a service account, so a CEL comparison is false rather than an error).
 */
export function convenienceFields(username: string | undefined): { username: string; namespace: string; serviceAccount: string } {
  const sa = serviceAccountOf(username);
  return { username: username ?? '', namespace: sa?.namespace ?? '', serviceAccount: sa?.serviceAccount ?? '' };
}

/**
 * Canonical instances of values that repeat across cached identities (group lists, audiences, namespaces,
 * node names, service-account names), so that 100,000 cached identities hold one copy of each instead of
 * 100,000. Bounded: when full it starts over; values already handed out stay valid, only their sharing with
 * later identities is lost.
 */
export class InternPool<T> {
  private readonly known = new Map<string, T>();

  constructor(private readonly maxEntries: number) {}

  /** The instance first interned under `key`, else `value` (which becomes it). */
  intern(key: string, value: T): T {
    return this.known.get(key) ?? this.add(key, value);
  }

  get(key: string): T | undefined {
    return this.known.get(key);
  }

  add(key: string, value: T): T {
    if (this.known.size >= this.maxEntries) this.known.clear();
    this.known.set(key, value);
    return value;
  }

  get size(): number {
    return this.known.size;
  }
}

const STRINGS = new InternPool<string>(16_384);
const STRING_LISTS = new InternPool<readonly string[]>(4_096);

/** The shared instance of a string equal to `s`. */
export function internString(s: string): string {
  return STRINGS.intern(s, s);
}

/** The shared, frozen instance of a list of strings equal to `list` (`list` itself, frozen, the first time). */
export function internStringList(list: readonly string[]): readonly string[] {
  if (list.length === 0) return EMPTY_LIST;
  // JSON keeps lists apart that a plain join would confuse (["a,b"] and ["a", "b"]).
  const key = JSON.stringify(list);
  return STRING_LISTS.get(key) ?? STRING_LISTS.add(key, Object.freeze(list));
}

const EMPTY_LIST: readonly string[] = Object.freeze([]);

/** Freezes a plain JSON-like value in place: identities are cached and shared between concurrent Checks. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/**
 * The `exp` claim of a JWT-shaped token, read without verifying it: only to bound how long a backend's
 * verdict on the token may be cached. Undefined for anything that is not a JWT with a numeric exp.
 */
export function unverifiedExpiry(token: string): number | undefined {
  const dot = token.indexOf('.');
  const dot2 = token.indexOf('.', dot + 1);
  if (dot <= 0 || dot2 <= dot) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(token.slice(dot + 1, dot2), 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

/** A path named in a policy: relative paths are relative to the policy file's directory. */
export function resolveBesidePolicy(node: YNode, given: string): string {
  return path.resolve(path.dirname(node.src.file), given);
}
