// The identity of a TokenReview verdict, built to be cached by the hundred thousand: the same fields as the
// API's status (authenticated, user {username, uid, groups, extra}, audiences) plus the convenience fields
// (username, namespace, serviceAccount). Frozen: cached identities are shared between concurrent Checks.
//
// An identity is split in two: a template, for what identities of one namespace, node and audience set have in
// common (group list, audiences, node name and uid, the order of the `extra` keys), shared by all of them; and
// the values of its own token (username, uid, credential id, pod name and uid). The TokenReview cache keeps
// the few identities in use as built objects and the rest packed (packTokenReviewIdentity: the template's
// number and the token's values in one string: with its cache key ~0.2 KiB instead of ~1 KiB as objects),
// rebuilt on use.
import { internString, internStringList, serviceAccountOf } from './identity-object.js';
import type { TokenReviewStatus } from './kube-api.js';

type User = NonNullable<TokenReviewStatus['user']>;
type Identity = Readonly<Record<string, unknown>>;

/**
 * `user.extra` keys whose value is unique per token or per pod: kept with each identity, not in its template
 * (a template per pod would be as many templates as identities). Any other key's values go in the template.
 */
const PER_TOKEN_EXTRA_KEYS = new Set([
  'authentication.kubernetes.io/credential-id',
  'authentication.kubernetes.io/pod-name',
  'authentication.kubernetes.io/pod-uid',
]);

/** What identities share: everything but the token's own values, which fill its slots in this order. */
interface IdentityTemplate {
  readonly id: number;
  /** The status had no user at all (the identity's user is `{}`). */
  readonly noUser: boolean;
  /** Slots: user.username, then user.uid, then one per `extra` key whose list is null here. */
  readonly hasUsername: boolean;
  readonly hasUid: boolean;
  readonly groups: readonly string[] | undefined;
  /** `extra` in its key order: the shared list, or null for a one-value list of the token's own. */
  readonly extra: readonly (readonly [string, readonly string[] | null])[] | undefined;
  readonly audiences: readonly string[] | undefined;
  /**
   * The namespace of a service-account user name ('' for other users): shared by the identities built. With
   * one, the username slot holds the service account's name only: the rest of the user name is usernamePrefix.
   */
  readonly namespace: string;
  readonly usernamePrefix: string;
}

/**
 * Templates, never dropped: a packed identity names its template by number, so a template must outlive every
 * packed identity. Bounded instead: past the bound, new kinds of identities are packed whole (as JSON).
 * Realistic clusters need one per namespace × node × audience set in use.
 */
const MAX_TEMPLATES = 8_192;
const templatesByKey = new Map<string, IdentityTemplate>();
const templatesById: IdentityTemplate[] = [];

/** Separates the template number and the slots in a packed identity. */
const SEP = '\u0000';

export function tokenReviewIdentity(status: TokenReviewStatus): Identity {
  const split = splitIdentity(status);
  return buildIdentity(split.template, split.slots);
}

/**
 * The identity as one string: its template's number and its own values (or, when it has no template, the
 * status fields as JSON). Built with join: one flat string, not a chain of concatenations. Every character is
 * below 256, so V8 stores it at one byte per character.
 */
export function packTokenReviewIdentity(identity: Identity): string {
  // An identity built here has the status's fields (user, audiences) as they were.
  const split = splitIdentity(identity as unknown as TokenReviewStatus);
  if (split.template.id >= 0 && split.slots.every(isPackable)) {
    return [split.template.id.toString(36), ...split.slots.map(packSlot)].join(SEP);
  }
  return JSON.stringify({ user: identity['user'], audiences: identity['audiences'] });
}

/** The identity `packTokenReviewIdentity` was given: deep-equal, frozen, sharing its template's lists. */
export function unpackTokenReviewIdentity(packed: string): Identity {
  if (packed.startsWith('{')) return tokenReviewIdentity({ authenticated: true, ...(JSON.parse(packed) as Omit<TokenReviewStatus, 'authenticated'>) });
  const head = packed.indexOf(SEP);
  const template = templatesById[parseInt(head < 0 ? packed : packed.slice(0, head), 36)];
  if (!template) throw new Error('packed identity names an unknown template');
  return buildIdentity(template, head < 0 ? [] : unpackSlots(packed, head + 1));
}

/**
 * A value ending in a UUID (uid, pod uid, `JTI=<uuid>` credential id: ~40% of what an identity holds) keeps its
 * UUID as its 16 bytes, one character each, after UUID_MARK: 17 characters instead of 36.
 */
const UUID_MARK = '\u0001';
const ENDS_IN_UUID = /^(.*?)([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/s;
const UUID_BYTES = 16;

/** Values with either marker character are packed whole (JSON), as the slots could not be told apart. */
function isPackable(value: string): boolean {
  return !value.includes(SEP) && !value.includes(UUID_MARK);
}

function packSlot(value: string): string {
  const m = ENDS_IN_UUID.exec(value);
  if (!m) return value;
  return [m[1]!, UUID_MARK, Buffer.from(m[2]! + m[3]! + m[4]! + m[5]! + m[6]!, 'hex').toString('latin1')].join('');
}

/** The slots after `start`: text up to SEP, where a UUID_MARK is followed by UUID_BYTES bytes (which may be SEP). */
function unpackSlots(packed: string, start: number): string[] {
  const slots: string[] = [];
  let i = start;
  for (;;) {
    let end = i;
    while (end < packed.length && packed[end] !== SEP && packed[end] !== UUID_MARK) end++;
    if (packed[end] === UUID_MARK) {
      const hex = Buffer.from(packed.slice(end + 1, end + 1 + UUID_BYTES), 'latin1').toString('hex');
      const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      slots.push(end === i ? uuid : packed.slice(i, end) + uuid);
      end += 1 + UUID_BYTES;
    } else {
      slots.push(packed.slice(i, end));
    }
    if (end >= packed.length) return slots;
    i = end + 1;
  }
}

/** Templates made so far (tests and diagnostics). */
export function identityTemplateCount(): number {
  return templatesById.length;
}

/** The status's (or an identity's: it has the same fields) template and own values. */
function splitIdentity(status: TokenReviewStatus): { template: IdentityTemplate; slots: string[] } {
  const user = status.user;
  const slots: string[] = [];
  const sa = serviceAccountOf(user?.username);
  if (sa !== undefined) slots.push(sa.serviceAccount);
  else if (user?.username !== undefined) slots.push(user.username);
  if (user?.uid !== undefined) slots.push(user.uid);
  let extra: [string, readonly string[] | null][] | undefined;
  if (user?.extra !== undefined) {
    extra = [];
    for (const key of Object.keys(user.extra)) {
      const list = user.extra[key]!;
      if (PER_TOKEN_EXTRA_KEYS.has(key) && list.length === 1) {
        slots.push(list[0]!);
        extra.push([key, null]);
      } else {
        extra.push([key, list]);
      }
    }
  }
  const namespace = sa?.namespace ?? '';
  const shape = {
    noUser: user === undefined || (user.username === undefined && user.uid === undefined && user.groups === undefined && user.extra === undefined),
    hasUsername: user?.username !== undefined,
    hasUid: user?.uid !== undefined,
    groups: user?.groups,
    extra,
    audiences: status.audiences,
    namespace,
  };
  const key = JSON.stringify(shape);
  return { template: templatesByKey.get(key) ?? newTemplate(key, shape), slots };
}

function newTemplate(key: string, shape: Omit<IdentityTemplate, 'id' | 'usernamePrefix'>): IdentityTemplate {
  const full = templatesById.length >= MAX_TEMPLATES;
  const template: IdentityTemplate = Object.freeze({
    id: full ? -1 : templatesById.length,
    noUser: shape.noUser,
    hasUsername: shape.hasUsername,
    hasUid: shape.hasUid,
    groups: shape.groups && internStringList(shape.groups),
    extra: shape.extra && Object.freeze(shape.extra.map(([k, list]) => Object.freeze([k, list && internStringList(list)] as const))),
    audiences: shape.audiences && internStringList(shape.audiences),
    namespace: internString(shape.namespace),
    usernamePrefix: shape.namespace === '' ? '' : `system:serviceaccount:${shape.namespace}:`,
  });
  // Past the bound the template serves this identity only (id -1: it is packed whole).
  if (!full) {
    templatesByKey.set(key, template);
    templatesById.push(template);
  }
  return template;
}

function buildIdentity(t: IdentityTemplate, slots: readonly string[]): Identity {
  let next = 0;
  let user: User = EMPTY_USER;
  let serviceAccount = '';
  if (!t.noUser) {
    const u: { username?: string; uid?: string; groups?: readonly string[]; extra?: Readonly<Record<string, readonly string[]>> } = {};
    if (t.hasUsername) {
      if (t.namespace === '') u.username = slots[next++]!;
      else {
        serviceAccount = slots[next++]!;
        // Joined: one flat string (`+` would make a cons string pointing at both parts).
        u.username = [t.usernamePrefix, serviceAccount].join('');
      }
    }
    if (t.hasUid) u.uid = slots[next++]!;
    if (t.groups !== undefined) u.groups = t.groups;
    if (t.extra !== undefined) {
      const extra: Record<string, readonly string[]> = {};
      for (const [key, shared] of t.extra) extra[key] = shared ?? Object.freeze([slots[next++]!]);
      u.extra = Object.freeze(extra);
    }
    user = Object.freeze(u);
  }
  const username = user.username ?? '';
  const namespace = t.namespace;
  // One object literal per shape (with or without audiences): its fields live inside the object, with no
  // separate property store as when fields are added one by one.
  const identity =
    t.audiences !== undefined
      ? { authenticated: true, user, audiences: t.audiences, username, namespace, serviceAccount }
      : { authenticated: true, user, username, namespace, serviceAccount };
  return Object.freeze(identity);
}

const EMPTY_USER: User = Object.freeze({});
