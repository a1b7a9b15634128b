// The identity of a TokenReview verdict, built to be cached by the hundred thousand: the same fields as the
// API's status (authenticated, user {username, uid, groups, extra}, audiences) plus the convenience fields
// (username, namespace, serviceAccount), but with every value that repeats across identities shared (group
// lists, audiences, namespaces, node names, ...) and the parsed answer's objects reused rather than copied.
// Frozen: cached identities are shared between concurrent Checks.
import { internedConvenienceFields, internString, internStringList } from './identity-object.js';
import type { TokenReviewStatus } from './kube-api.js';

/** `user.extra` keys whose values are unique per token: interning them would only churn the pools. */
const PER_TOKEN_EXTRA_KEYS = new Set(['authentication.kubernetes.io/credential-id']);

export function tokenReviewIdentity(status: TokenReviewStatus): Readonly<Record<string, unknown>> {
  const user = compactUser(status.user);
  const { username, namespace, serviceAccount } = internedConvenienceFields(user.username);
  // One object literal per shape (with or without audiences): its fields live inside the object, with no
  // separate property store as when fields are added one by one.
  const identity =
    status.audiences !== undefined
      ? { authenticated: true, user, audiences: internStringList(status.audiences), username, namespace, serviceAccount }
      : { authenticated: true, user, username, namespace, serviceAccount };
  return Object.freeze(identity);
}

type User = NonNullable<TokenReviewStatus['user']>;

function compactUser(user: User | undefined): User {
  if (!user) return EMPTY_USER;
  const out: { username?: string; uid?: string; groups?: readonly string[]; extra?: Readonly<Record<string, readonly string[]>> } = {};
  if (user.username !== undefined) out.username = internString(user.username);
  if (user.uid !== undefined) out.uid = internString(user.uid);
  if (user.groups !== undefined) out.groups = internStringList(user.groups);
  if (user.extra !== undefined) out.extra = compactExtra(user.extra);
  return Object.freeze(out);
}

/**
 * The answer's own `extra` object (its keys are already shared by the JavaScript engine), with each value list
 * replaced by its shared instance, in place: same keys, same order, no copy.
 */
function compactExtra(extra: Readonly<Record<string, readonly string[]>>): Readonly<Record<string, readonly string[]>> {
  if (Object.isFrozen(extra)) return extra;
  const values = extra as Record<string, readonly string[]>;
  for (const key of Object.keys(values)) {
    const list = values[key]!;
    values[key] = PER_TOKEN_EXTRA_KEYS.has(key) ? Object.freeze(list) : internStringList(list);
  }
  return Object.freeze(values);
}

const EMPTY_USER: User = Object.freeze({});
