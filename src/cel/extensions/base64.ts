/**
 * cel-go `ext.Encoders`: `base64.encode(bytes) -> string` and `base64.decode(string) -> bytes`.
 *
 * decode follows Go: it accepts the padded standard alphabet and, failing that, the unpadded
 * one (so "aGVsbG8" decodes like "aGVsbG8="), skips CR and LF, and rejects anything else that is
 * not base64 (URL-safe characters, misplaced padding, a dangling sixth bit group). The error
 * names the offending position, never the input.
 */
import { EvaluationError, type Environment } from '@marcbachmann/cel-js';

const ALPHABET = /^[A-Za-z0-9+/]*$/;

function invalidAt(position: number): EvaluationError {
  return new EvaluationError(`base64.decode: illegal base64 data at input byte ${position}`);
}

/** Decodes standard base64, padded or not; throws a CEL error on anything else. */
export function decodeBase64(text: string): Uint8Array {
  const compact = text.replace(/[\r\n]/g, '');
  const firstPad = compact.indexOf('=');
  const body = firstPad < 0 ? compact : compact.slice(0, firstPad);
  const padding = firstPad < 0 ? '' : compact.slice(firstPad);

  const badChar = [...body].findIndex((char) => !ALPHABET.test(char));
  if (badChar >= 0) throw invalidAt(badChar);
  if (padding !== '') {
    // Padded form: '=' only at the end, making the total a multiple of four.
    if (!/^={1,2}$/.test(padding)) throw invalidAt(firstPad);
    if (compact.length % 4 !== 0 || body.length % 4 === 0 || body.length % 4 === 1) throw invalidAt(firstPad);
    if ((body.length % 4 === 2 && padding.length !== 2) || (body.length % 4 === 3 && padding.length !== 1)) throw invalidAt(firstPad);
  } else if (body.length % 4 === 1) {
    // Six bits cannot make a byte.
    throw invalidAt(body.length - 1);
  }
  return new Uint8Array(Buffer.from(body, 'base64'));
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Receiver of the `base64` namespace, the way cel-js models `optional.of(...)`. */
class Base64Namespace {}

export function registerBase64(env: Environment): void {
  env
    .registerType('Base64Namespace', Base64Namespace)
    .registerConstant('base64', 'Base64Namespace', new Base64Namespace())
    .registerFunction('Base64Namespace.encode(bytes): string', (_namespace: Base64Namespace, bytes: Uint8Array) => encodeBase64(bytes))
    .registerFunction('Base64Namespace.decode(string): bytes', (_namespace: Base64Namespace, text: string) => decodeBase64(text));
}
