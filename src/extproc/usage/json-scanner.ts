// A streaming JSON field picker: fed a JSON text in chunks of any size, it keeps only the values found at a
// few object paths (e.g. `usage`, `message.usage`) and nothing else, so a 10 MB completion costs a few
// bytes of state, not 10 MB of buffer. It never throws and never validates: on malformed input it simply
// finds fewer values (a captured value that does not parse is dropped).
//
// Memory is bounded by MAX_DEPTH (nesting tracked per level) and MAX_CAPTURE_BYTES per captured value;
// past MAX_DEPTH the scanner gives up on the rest of the text (`gaveUp`), past MAX_CAPTURE_BYTES it drops
// that one value.

/** Nesting levels tracked; deeper input makes the scanner stop (providers nest a handful of levels). */
export const MAX_DEPTH = 128;
/** Largest value kept for one path (usage objects are a few hundred bytes). */
export const MAX_CAPTURE_BYTES = 64 * 1024;
/** Object keys longer than this never match a path (ours are short). */
const MAX_KEY_BYTES = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

interface Frame {
  readonly isObject: boolean;
  /** The key whose value is being read (objects), or undefined (arrays, or an unmatchable key). */
  key: string | undefined;
  /** Objects: the next string is a key. */
  expectKey: boolean;
}

interface Capture {
  readonly path: string;
  /** Stack depth where the value started: it ends when the stack is back to this depth. */
  readonly depth: number;
  readonly isString: boolean;
  readonly isContainer: boolean;
  readonly chunks: Buffer[];
  size: number;
}

/** Dotted paths (`message.usage`) to the values captured, each the last one seen, parsed. */
export type CapturedFields = ReadonlyMap<string, unknown>;

/** The paths a scanner looks for, prepared once and shared by the scanners of many SSE events. */
export class FieldPaths {
  readonly set: ReadonlySet<string>;
  /** Segments of the longest path: values nested deeper are never candidates. */
  readonly maxDepth: number;

  constructor(paths: readonly string[]) {
    this.set = new Set(paths);
    this.maxDepth = Math.max(0, ...paths.map((path) => path.split('.').length));
  }
}

export class JsonFieldScanner {
  private readonly paths: ReadonlySet<string>;
  private readonly maxPathDepth: number;
  private readonly stack: Frame[] = [];
  private readonly found = new Map<string, unknown>();
  private inString = false;
  private escaped = false;
  private stringIsKey = false;
  private keyBytes: number[] = [];
  private keyOverflow = false;
  private capture: Capture | undefined;
  /** Bytes of a number/true/false/null being captured end at the next delimiter. */
  private inLiteral = false;
  private stopped = false;

  constructor(paths: FieldPaths | readonly string[]) {
    const prepared = paths instanceof FieldPaths ? paths : new FieldPaths(paths);
    this.paths = prepared.set;
    this.maxPathDepth = prepared.maxDepth;
  }

  /** True when the input nested deeper than MAX_DEPTH and the rest was ignored. */
  get gaveUp(): boolean {
    return this.stopped;
  }

  write(chunk: Uint8Array): void {
    if (this.stopped) return;
    const bytes = chunk;
    const length = bytes.length;
    let captureFrom = this.capture ? 0 : -1;
    let nextQuote = -2; // unknown yet; -1: none left in this chunk
    let nextBackslash = -2;
    for (let i = 0; i < length; i++) {
      if (this.inString && !this.escaped && !this.stringIsKey) {
        // Fast path through string contents (most of a completion): only a quote or backslash matters,
        // found with the typed array's native search.
        // Both positions are remembered, so every byte is searched at most once per kind (text full of
        // escapes must not rescan to the same closing quote each time).
        if (nextQuote !== -1 && nextQuote < i) nextQuote = bytes.indexOf(QUOTE, i);
        if (nextBackslash !== -1 && nextBackslash < i) nextBackslash = bytes.indexOf(BACKSLASH, i);
        const quoteAt = nextQuote === -1 ? length : nextQuote;
        const backslashAt = nextBackslash === -1 ? length : nextBackslash;
        i = Math.min(quoteAt, backslashAt);
        if (i === length) break;
      }
      const byte = bytes[i] as number;
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          if (this.stringIsKey) this.keyOverflow = true; // keys written with escapes never match a path
        } else if (byte === BACKSLASH) {
          this.escaped = true;
        } else if (byte === QUOTE) {
          this.inString = false;
          if (this.stringIsKey) {
            this.endKey();
          } else if (this.capture?.isString && this.stack.length === this.capture.depth) {
            this.appendCapture(bytes, captureFrom, i + 1);
            captureFrom = -1;
            this.finishCapture();
          }
        } else if (this.stringIsKey) {
          this.addKeyByte(byte);
        }
        continue;
      }
      if (this.inLiteral) {
        if (isLiteralByte(byte)) continue;
        this.inLiteral = false;
        if (this.capturingLiteral()) {
          this.appendCapture(bytes, captureFrom, i);
          captureFrom = -1;
          this.finishCapture();
        }
      }
      switch (byte) {
        case 0x20:
        case 0x09:
        case 0x0a:
        case 0x0d:
          break;
        case QUOTE: {
          const top = this.stack[this.stack.length - 1];
          this.inString = true;
          this.escaped = false;
          if (top?.isObject && top.expectKey) {
            this.stringIsKey = true;
            this.keyBytes = [];
            this.keyOverflow = false;
          } else {
            this.stringIsKey = false;
            if (this.beginValue(false, true)) captureFrom = i;
          }
          break;
        }
        case LBRACE:
        case LBRACKET: {
          if (this.beginValue(true, false)) captureFrom = i;
          if (this.stack.length >= MAX_DEPTH) {
            this.stopped = true;
            this.capture = undefined;
            return;
          }
          this.stack.push({ isObject: byte === LBRACE, key: undefined, expectKey: byte === LBRACE });
          break;
        }
        case RBRACE:
        case RBRACKET: {
          this.stack.pop();
          if (this.capture?.isContainer && this.stack.length === this.capture.depth) {
            this.appendCapture(bytes, captureFrom, i + 1);
            captureFrom = -1;
            this.finishCapture();
          }
          break;
        }
        case COLON:
          break;
        case COMMA: {
          const top = this.stack[this.stack.length - 1];
          if (top?.isObject) {
            top.expectKey = true;
            top.key = undefined;
          }
          break;
        }
        default:
          // A number, true, false or null.
          if (this.beginValue(false, false)) captureFrom = i;
          this.inLiteral = true;
          break;
      }
    }
    if (this.capture && captureFrom >= 0) this.appendCapture(bytes, captureFrom, length);
  }

  /** The values captured so far (a literal still open at the end of input is completed first). */
  end(): CapturedFields {
    if (this.inLiteral) {
      this.inLiteral = false;
      if (this.capturingLiteral()) this.finishCapture();
    }
    this.capture = undefined;
    return this.found;
  }

  /** The value being captured is the number/true/false/null now ending (not a container around it). */
  private capturingLiteral(): boolean {
    const capture = this.capture;
    return capture !== undefined && !capture.isString && !capture.isContainer && this.stack.length === capture.depth;
  }

  private addKeyByte(byte: number): void {
    if (this.keyOverflow) return;
    if (this.keyBytes.length >= MAX_KEY_BYTES) {
      this.keyOverflow = true;
      return;
    }
    this.keyBytes.push(byte);
  }

  private endKey(): void {
    this.stringIsKey = false;
    const top = this.stack[this.stack.length - 1];
    if (!top) return;
    top.expectKey = false;
    top.key = this.keyOverflow ? undefined : Buffer.from(this.keyBytes).toString('utf8');
  }

  /** A value starts at the current position: returns true when it is one of the wanted paths. */
  private beginValue(isContainer: boolean, isString: boolean): boolean {
    if (this.capture) return false; // nested inside a captured value: part of it
    const depth = this.stack.length;
    if (depth === 0 || depth > this.maxPathDepth) return false;
    let path = '';
    for (const frame of this.stack) {
      if (!frame.isObject || frame.key === undefined) return false;
      path = path === '' ? frame.key : `${path}.${frame.key}`;
    }
    if (!this.paths.has(path)) return false;
    this.capture = { path, depth, isString, isContainer, chunks: [], size: 0 };
    return true;
  }

  private appendCapture(bytes: Uint8Array, from: number, to: number): void {
    const capture = this.capture;
    if (!capture || from < 0 || to <= from) return;
    capture.size += to - from;
    if (capture.size > MAX_CAPTURE_BYTES) {
      // Too large to be a usage object: drop it, keep scanning (the value's end still has to be found).
      capture.chunks.length = 0;
      return;
    }
    // Copy: the chunk belongs to the caller and may be reused.
    capture.chunks.push(Buffer.from(bytes.subarray(from, to)));
  }

  private finishCapture(): void {
    const capture = this.capture;
    this.capture = undefined;
    if (!capture || capture.size > MAX_CAPTURE_BYTES || capture.chunks.length === 0) return;
    try {
      this.found.set(capture.path, JSON.parse(Buffer.concat(capture.chunks).toString('utf8')));
    } catch {
      // Not valid JSON after all: ignored.
    }
  }
}

function isLiteralByte(byte: number): boolean {
  // Digits, sign, exponent, decimal point, and the letters of true/false/null.
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d ||
    byte === 0x2b ||
    byte === 0x2e ||
    (byte >= 0x61 && byte <= 0x7a) ||
    (byte >= 0x41 && byte <= 0x5a)
  );
}
