// Kyverno rules return a CheckResponse or `null` ("no decision"), often as `cond ? envoy...Response() : null`.
// cel-go lets `null` stand for a message there; cel-js's checker wants both ternary branches of one type. For
// those rule expressions only, the `null` literal is read as `dyn(null)`: same value, a type that unifies.
// Offsets in the rewritten text map back to the user's text, so errors keep their columns.

const DYN_PREFIX = 'dyn(';
const IDENT = /[A-Za-z0-9_]/;

export interface RewrittenExpression {
  readonly text: string;
  /** Offset in `text` → offset in the original expression. */
  originalOffset(offset: number): number;
}

/** Length of the string literal starting at `i` (CEL quotes, triple quotes, r/b prefixes), or 0. */
function stringLiteralLength(src: string, i: number): number {
  let j = i;
  let raw = false;
  while (j < src.length && /[rRbB]/.test(src[j]!) && j - i < 2) {
    if (src[j] === 'r' || src[j] === 'R') raw = true;
    j++;
  }
  const q = src[j];
  if (q !== '"' && q !== "'") return 0;
  if (j > i && i > 0 && IDENT.test(src[i - 1]!)) return 0;
  const triple = src.startsWith(q.repeat(3), j);
  const close = triple ? q.repeat(3) : q;
  let k = j + close.length;
  while (k < src.length) {
    if (!raw && src[k] === '\\') {
      k += 2;
      continue;
    }
    if (src.startsWith(close, k)) return k + close.length - i;
    if (!triple && src[k] === '\n') break;
    k++;
  }
  return src.length - i;
}

export function rewriteNullLiterals(src: string): RewrittenExpression {
  let out = '';
  const inserted: number[] = []; // offsets in `out` where "dyn(" was inserted
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    const lit = /["'rRbB]/.test(ch) ? stringLiteralLength(src, i) : 0;
    if (lit > 0) {
      out += src.slice(i, i + lit);
      i += lit;
      continue;
    }
    if (
      src.startsWith('null', i) &&
      (i === 0 || !(IDENT.test(src[i - 1]!) || src[i - 1] === '.')) &&
      (i + 4 >= src.length || !IDENT.test(src[i + 4]!))
    ) {
      inserted.push(out.length);
      out += `${DYN_PREFIX}null)`;
      i += 4;
      continue;
    }
    out += ch;
    i++;
  }
  return {
    text: out,
    originalOffset(offset: number): number {
      let shift = 0;
      for (const at of inserted) {
        if (offset >= at + DYN_PREFIX.length + 4) shift += DYN_PREFIX.length + 1;
        else if (offset >= at) return offset - shift - Math.min(offset - at, DYN_PREFIX.length);
      }
      return offset - shift;
    },
  };
}
