/**
 * cel-go `ext.Strings` (version 3+) on top of @marcbachmann/cel-js 8.0.0.
 *
 * The library already has contains/startsWith/endsWith/matches/size, `join` (list<string>, with
 * and without separator), `lowerAscii`, `upperAscii` and `trim`. This file adds what it lacks
 * (charAt, replace, reverse, format, strings.quote) and replaces what it gets wrong: indexOf,
 * lastIndexOf, substring and split count UTF-16 units there, where CEL counts code points, and
 * their offset and range checks differ from cel-go.
 *
 * Not replaceable (zero-argument built-ins, see receiver-override.ts): cel-js's lowerAscii and
 * upperAscii also change non-ASCII letters, and its trim uses JavaScript's whitespace set
 * (trims U+FEFF, keeps U+0085) instead of Unicode White_Space.
 */
import { EvaluationError, type Environment } from '@marcbachmann/cel-js';
import { formatString } from './format.js';
import { replaceReceiverMethod } from './receiver-override.js';

/** Code points of a string: CEL indexes strings by code point, not by UTF-16 unit. */
function codePoints(text: string): string[] {
  return Array.from(text);
}

function outOfRange(index: bigint): EvaluationError {
  return new EvaluationError(`index out of range: ${index}`);
}

/** Position of `needle` in `haystack` (both code point arrays) at or after `from`, or -1. */
function findForward(haystack: readonly string[], needle: readonly string[], from: number): number {
  for (let i = from; i + needle.length <= haystack.length; i++) {
    if (needle.every((point, j) => haystack[i + j] === point)) return i;
  }
  return -1;
}

/** Position of the last `needle` in `haystack` starting at or before `from`, or -1. */
function findBackward(haystack: readonly string[], needle: readonly string[], from: number): number {
  for (let i = Math.min(from, haystack.length - needle.length); i >= 0; i--) {
    if (needle.every((point, j) => haystack[i + j] === point)) return i;
  }
  return -1;
}

export function charAt(text: string, index: bigint): string {
  const points = codePoints(text);
  if (index < 0n || index > BigInt(points.length)) throw outOfRange(index);
  return points[Number(index)] ?? '';
}

export function indexOf(text: string, search: string): bigint {
  if (search === '') return 0n;
  return BigInt(findForward(codePoints(text), codePoints(search), 0));
}

export function indexOfFrom(text: string, search: string, offset: bigint): bigint {
  if (search === '') return offset;
  const points = codePoints(text);
  if (offset < 0n || offset >= BigInt(points.length)) throw outOfRange(offset);
  return BigInt(findForward(points, codePoints(search), Number(offset)));
}

export function lastIndexOf(text: string, search: string): bigint {
  const points = codePoints(text);
  if (search === '') return BigInt(points.length);
  return BigInt(findBackward(points, codePoints(search), points.length - 1));
}

export function lastIndexOfFrom(text: string, search: string, offset: bigint): bigint {
  if (search === '') return offset;
  const points = codePoints(text);
  if (offset < 0n || offset >= BigInt(points.length)) throw outOfRange(offset);
  return BigInt(findBackward(points, codePoints(search), Number(offset)));
}

export function substring(text: string, start: bigint): string {
  const points = codePoints(text);
  if (start < 0n || start > BigInt(points.length)) throw outOfRange(start);
  return points.slice(Number(start)).join('');
}

export function substringRange(text: string, start: bigint, end: bigint): string {
  const points = codePoints(text);
  const length = BigInt(points.length);
  if (start < 0n || start > length) throw outOfRange(start);
  if (end < 0n || end > length) throw outOfRange(end);
  if (start > end) throw new EvaluationError(`invalid substring range. start: ${start}, end: ${end}`);
  return points.slice(Number(start), Number(end)).join('');
}

/** Go's strings.SplitN: n < 0 splits everywhere, n == 0 gives no parts, n > 0 at most n parts. */
export function splitN(text: string, separator: string, limit: bigint): string[] {
  if (limit === 0n) return [];
  if (separator === '') {
    // An empty separator splits between code points (Go splits between UTF-8 sequences).
    const points = codePoints(text);
    if (limit < 0n || BigInt(points.length) <= limit) return points;
    const head = points.slice(0, Number(limit) - 1);
    return [...head, points.slice(head.length).join('')];
  }
  const parts = text.split(separator);
  if (limit < 0n || BigInt(parts.length) <= limit) return parts;
  const head = parts.slice(0, Number(limit) - 1);
  return [...head, parts.slice(head.length).join(separator)];
}

/** Go's strings.Replace: at most `limit` replacements (all when negative), left to right. */
export function replaceN(text: string, search: string, replacement: string, limit: bigint): string {
  if (limit === 0n) return text;
  if (search === '') {
    // An empty pattern matches before every code point and at the end.
    const points = codePoints(text);
    let result = '';
    let done = 0n;
    for (const point of points) {
      if (limit < 0n || done < limit) {
        result += replacement;
        done++;
      }
      result += point;
    }
    return limit < 0n || done < limit ? result + replacement : result;
  }
  let result = '';
  let rest = text;
  let done = 0n;
  for (;;) {
    const at = rest.indexOf(search);
    if (at < 0 || (limit >= 0n && done >= limit)) return result + rest;
    result += rest.slice(0, at) + replacement;
    rest = rest.slice(at + search.length);
    done++;
  }
}

export function reverse(text: string): string {
  return codePoints(text).reverse().join('');
}

/** strings.quote: a double-quoted CEL string literal for `text`. */
export function quote(text: string): string {
  let quoted = '"';
  for (const point of text) {
    switch (point) {
      case '\x07':
        quoted += '\\a';
        break;
      case '\b':
        quoted += '\\b';
        break;
      case '\f':
        quoted += '\\f';
        break;
      case '\n':
        quoted += '\\n';
        break;
      case '\r':
        quoted += '\\r';
        break;
      case '\t':
        quoted += '\\t';
        break;
      case '\v':
        quoted += '\\v';
        break;
      case '\\':
        quoted += '\\\\';
        break;
      case '"':
        quoted += '\\"';
        break;
      default: {
        // A lone surrogate is not a valid code point; cel-go writes U+FFFD for invalid runes.
        const unit = point.charCodeAt(0);
        quoted += point.length === 1 && unit >= 0xd800 && unit <= 0xdfff ? '\uFFFD' : point;
      }
    }
  }
  return `${quoted}"`;
}

/** Receiver of the `strings` namespace (`strings.quote(s)`), like cel-js's `optional`. */
class StringsNamespace {}

export function registerStrings(env: Environment): void {
  replaceReceiverMethod(env, 'indexOf', [
    { receiver: 'string', args: ['string'], returns: 'int', handler: indexOf },
    { receiver: 'string', args: ['string', 'int'], returns: 'int', handler: indexOfFrom },
  ]);
  replaceReceiverMethod(env, 'lastIndexOf', [
    { receiver: 'string', args: ['string'], returns: 'int', handler: lastIndexOf },
    { receiver: 'string', args: ['string', 'int'], returns: 'int', handler: lastIndexOfFrom },
  ]);
  replaceReceiverMethod(env, 'substring', [
    { receiver: 'string', args: ['int'], returns: 'string', handler: substring },
    { receiver: 'string', args: ['int', 'int'], returns: 'string', handler: substringRange },
  ]);
  replaceReceiverMethod(env, 'split', [
    { receiver: 'string', args: ['string'], returns: 'list<string>', handler: (text: string, separator: string) => splitN(text, separator, -1n) },
    { receiver: 'string', args: ['string', 'int'], returns: 'list<string>', handler: splitN },
  ]);

  env
    .registerFunction('string.charAt(int): string', charAt)
    .registerFunction('string.replace(string, string): string', (text: string, search: string, replacement: string) =>
      replaceN(text, search, replacement, -1n),
    )
    .registerFunction('string.replace(string, string, int): string', replaceN)
    .registerFunction('string.reverse(): string', reverse)
    .registerFunction('string.format(list): string', formatString)
    .registerType('StringsNamespace', StringsNamespace)
    .registerConstant('strings', 'StringsNamespace', new StringsNamespace())
    .registerFunction('StringsNamespace.quote(string): string', (_namespace: StringsNamespace, text: string) => quote(text));
}
