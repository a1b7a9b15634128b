// Maps an offset inside a YAML scalar's parsed value back to an offset in the file, for every scalar style:
// plain and block scalars (which may fold lines), single-quoted ('' escapes) and double-quoted (\ escapes).
// Lint errors in a CEL expression then point at the character the user wrote, not at a re-serialized copy.
import { Scalar } from 'yaml';

/** One piece of the value copied verbatim from the source: value[valueStart..] == text[sourceStart..]. */
interface Segment {
  readonly valueStart: number;
  readonly sourceStart: number;
  readonly length: number;
}

/** Source offset of value offset `offset`, given verbatim segments in order. */
function fromSegments(segments: readonly Segment[], offset: number, fallback: number): number {
  let prev: Segment | undefined;
  for (const s of segments) {
    if (offset < s.valueStart) {
      // On a folded line break between two segments: point at the end of the line before it.
      return prev ? prev.sourceStart + prev.length : s.sourceStart;
    }
    if (offset <= s.valueStart + s.length) return s.sourceStart + (offset - s.valueStart);
    prev = s;
  }
  return prev ? prev.sourceStart + prev.length : fallback;
}

/**
 * Locates each source line's content inside the value, in order. Folding only changes the line breaks
 * between lines, so every non-empty line appears verbatim, a few characters after the previous one.
 */
function locateLines(value: string, lines: ReadonlyArray<{ content: string; sourceStart: number }>): Segment[] {
  const out: Segment[] = [];
  let cursor = 0;
  for (const l of lines) {
    if (l.content === '') continue;
    const at = value.indexOf(l.content, cursor);
    if (at < 0) break;
    out.push({ valueStart: at, sourceStart: l.sourceStart, length: l.content.length });
    cursor = at + l.content.length;
  }
  return out;
}

function sourceLines(text: string, start: number, end: number): Array<{ line: string; start: number }> {
  const out: Array<{ line: string; start: number }> = [];
  let s = start;
  while (s <= end) {
    let e = text.indexOf('\n', s);
    if (e < 0 || e > end) e = end;
    out.push({ line: text.slice(s, e).replace(/\r$/, ''), start: s });
    if (e >= end) break;
    s = e + 1;
  }
  return out;
}

function plainSegments(text: string, start: number, end: number, value: string): Segment[] {
  const lines = sourceLines(text, start, end).map(({ line, start: ls }) => {
    const lead = line.length - line.trimStart().length;
    return { content: line.trim(), sourceStart: ls + lead };
  });
  return locateLines(value, lines);
}

function blockSegments(text: string, start: number, end: number, value: string): Segment[] {
  // The header line (`|`, `>-`, `|2` ...) ends at the first newline; content lines follow.
  const bodyStart = text.indexOf('\n', start) + 1;
  if (bodyStart <= 0 || bodyStart > end) return [];
  const lines = sourceLines(text, bodyStart, end);
  // Content indentation: the least-indented non-empty line (the first one, unless an indentation indicator
  // lets later lines sit further left); extra indentation is part of the value and appears in it verbatim.
  const indents = lines.filter((l) => l.line.trim() !== '').map((l) => l.line.length - l.line.trimStart().length);
  const indent = indents.length ? Math.min(...indents) : 0;
  return locateLines(
    value,
    lines.map(({ line, start: ls }) => ({ content: line.length > indent ? line.slice(indent) : '', sourceStart: ls + indent })),
  );
}

const ESCAPE_LENGTH: Record<string, number> = { x: 4, u: 6, U: 10 };
const SIMPLE_ESCAPES: Record<string, string> = {
  '0': '\0', a: '\x07', b: '\b', t: '\t', '\t': '\t', n: '\n', v: '\v', f: '\f', r: '\r', e: '\x1b',
  ' ': ' ', '"': '"', '/': '/', '\\': '\\', N: '\u0085', _: '\u00a0', L: '\u2028', P: '\u2029',
};

/**
 * Walks a quoted scalar as YAML reads it, recording the source offset of every value character.
 * Handles '' (single), backslash escapes and escaped line breaks (double), and line folding (both).
 */
function quotedMap(text: string, start: number, end: number, double: boolean): { value: string; map: number[] } {
  const chars: string[] = [];
  const map: number[] = [];
  const close = text[end - 1] === (double ? '"' : "'") ? end - 1 : end;
  let i = start + 1;
  let lineFirstChar = 0;
  while (i < close) {
    const c = text[i]!;
    if (c === '\n' || c === '\r') {
      // Folding: trailing blanks of the line go, then the break becomes a space, or one \n per empty line.
      while (chars.length > lineFirstChar && (chars[chars.length - 1] === ' ' || chars[chars.length - 1] === '\t')) {
        chars.pop();
        map.pop();
      }
      const breakAt = i;
      let empty = 0;
      i++;
      for (;;) {
        while (i < close && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
        if (text[i] === '\n' && i < close) {
          empty++;
          i++;
          continue;
        }
        break;
      }
      if (empty === 0) {
        chars.push(' ');
        map.push(breakAt);
      } else {
        for (let k = 0; k < empty; k++) {
          chars.push('\n');
          map.push(breakAt);
        }
      }
      lineFirstChar = chars.length;
      continue;
    }
    if (double && c === '\\') {
      const n = text[i + 1] ?? '';
      if (n === '\n' || n === '\r') {
        // Escaped line break: joins the lines with nothing in between.
        i += 2;
        while (i < close && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
        lineFirstChar = chars.length;
        continue;
      }
      const len = ESCAPE_LENGTH[n] ?? 2;
      const decoded = len > 2 ? String.fromCodePoint(parseInt(text.slice(i + 2, i + len), 16) || 0xfffd) : (SIMPLE_ESCAPES[n] ?? n);
      // One escape may stand for two UTF-16 units (\U beyond the BMP): both point at the backslash.
      for (const unit of decoded.split('')) {
        chars.push(unit);
        map.push(i);
      }
      i += len;
      continue;
    }
    if (!double && c === "'" && text[i + 1] === "'") {
      chars.push("'");
      map.push(i);
      i += 2;
      continue;
    }
    chars.push(c);
    map.push(i);
    i++;
  }
  return { value: chars.join(''), map };
}

/**
 * Offset in the file of the character at `offset` in the scalar's value. `text` is the whole file;
 * `node.range` gives the scalar's extent.
 */
export function scalarSourceOffset(text: string, node: Scalar, offset: number): number {
  const range = node.range;
  if (!range) return 0;
  const [start, valueEnd] = range;
  const value = typeof node.source === 'string' ? node.source : String(node.value ?? '');
  switch (node.type) {
    case Scalar.QUOTE_DOUBLE:
    case Scalar.QUOTE_SINGLE: {
      const { map } = quotedMap(text, start, valueEnd, node.type === Scalar.QUOTE_DOUBLE);
      if (offset < map.length) return map[offset]!;
      return map.length ? map[map.length - 1]! + 1 : start + 1;
    }
    case Scalar.BLOCK_LITERAL:
    case Scalar.BLOCK_FOLDED:
      return fromSegments(blockSegments(text, start, valueEnd, value), offset, start);
    default:
      return fromSegments(plainSegments(text, start, valueEnd, value), offset, start + offset);
  }
}

/** For tests: the value a quoted scalar's walk produces (must equal what the YAML parser read). */
export function quotedValueForTest(text: string, node: Scalar): string {
  const [start, end] = node.range ?? [0, 0];
  return quotedMap(text, start, end, node.type === Scalar.QUOTE_DOUBLE).value;
}
