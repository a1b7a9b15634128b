// A typed reader over YAML nodes that keeps positions, so validation errors point into the user's file
// (not into a re-serialized copy).
import { isMap, isScalar, isSeq, LineCounter, type Node, type Document } from 'yaml';
import { Diagnostics, didYouMean, type SourcePos } from './diagnostics.js';
import { scalarSourceOffset } from './scalar-offsets.js';

export class SourceFile {
  readonly lineCounter = new LineCounter();
  constructor(
    readonly file: string,
    readonly text: string,
  ) {}
  pos(offset: number): SourcePos {
    const { line, col } = this.lineCounter.linePos(offset);
    return { file: this.file, line, col };
  }
}

export class YNode {
  constructor(
    readonly src: SourceFile,
    readonly node: Node | null,
    readonly diags: Diagnostics,
    /** Position of the key (or parent) when the node itself is absent. */
    readonly fallback: SourcePos,
  ) {}

  static of(src: SourceFile, doc: Document.Parsed, diags: Diagnostics): YNode {
    const n = doc.contents as Node | null;
    return new YNode(src, n, diags, src.pos(n?.range?.[0] ?? 0));
  }

  get pos(): SourcePos {
    const off = this.node?.range?.[0];
    return off === undefined ? this.fallback : this.src.pos(off);
  }

  error(message: string): void {
    this.diags.error(this.pos, message);
  }

  get isMap(): boolean {
    return isMap(this.node);
  }
  get isSeq(): boolean {
    return isSeq(this.node);
  }
  get isScalar(): boolean {
    return isScalar(this.node);
  }
  get isNull(): boolean {
    return this.node === null || (isScalar(this.node) && this.node.value === null);
  }

  /** Keys of a map, in order (non-maps report an error and yield none). */
  entries(what = 'a mapping'): Array<[string, YNode]> {
    if (this.isNull) return [];
    if (!isMap(this.node)) {
      this.error(`expected ${what}`);
      return [];
    }
    const out: Array<[string, YNode]> = [];
    for (const pair of this.node.items) {
      const keyNode = pair.key as Node | null;
      const key = isScalar(keyNode) ? String(keyNode.value) : '';
      const keyPos = this.src.pos(keyNode?.range?.[0] ?? this.node.range?.[0] ?? 0);
      out.push([key, new YNode(this.src, (pair.value as Node | null) ?? null, this.diags, keyPos)]);
    }
    return out;
  }

  get(key: string): YNode | undefined {
    if (!isMap(this.node)) return undefined;
    for (const pair of this.node.items) {
      const k = pair.key as Node | null;
      if (isScalar(k) && String(k.value) === key) {
        return new YNode(this.src, (pair.value as Node | null) ?? null, this.diags, this.src.pos(k.range?.[0] ?? 0));
      }
    }
    return undefined;
  }

  /** Reports keys not in `allowed`, with a did-you-mean suggestion. */
  checkKeys(allowed: readonly string[], where: string): void {
    if (!isMap(this.node)) return;
    for (const pair of this.node.items) {
      const k = pair.key as Node | null;
      const key = isScalar(k) ? String(k.value) : '';
      if (!allowed.includes(key)) {
        this.diags.error(
          this.src.pos(k?.range?.[0] ?? 0),
          `unknown field "${key}" in ${where}${didYouMean(key, allowed)}`,
        );
      }
    }
  }

  items(what = 'a list'): YNode[] {
    if (this.isNull) return [];
    if (!isSeq(this.node)) {
      this.error(`expected ${what}`);
      return [];
    }
    return this.node.items.map(
      (n) => new YNode(this.src, (n as Node | null) ?? null, this.diags, this.pos),
    );
  }

  /** A scalar as a string (numbers and booleans are converted); reports non-scalars. */
  string(what = 'a string'): string | undefined {
    if (!isScalar(this.node) || this.node.value === null || typeof this.node.value === 'object') {
      this.error(`expected ${what}`);
      return undefined;
    }
    return String(this.node.value);
  }

  number(what = 'a number'): number | undefined {
    if (isScalar(this.node) && typeof this.node.value === 'number') return this.node.value;
    if (isScalar(this.node) && typeof this.node.value === 'string' && /^-?\d+(\.\d+)?$/.test(this.node.value)) {
      return Number(this.node.value);
    }
    this.error(`expected ${what}`);
    return undefined;
  }

  bool(what = 'true or false'): boolean | undefined {
    if (isScalar(this.node) && typeof this.node.value === 'boolean') return this.node.value;
    this.error(`expected ${what}`);
    return undefined;
  }

  stringList(what = 'a list of strings'): string[] {
    return this.items(what)
      .map((n) => n.string('a string'))
      .filter((s): s is string => s !== undefined);
  }

  toJS(): unknown {
    return this.node === null ? null : this.node.toJSON();
  }

  /** Maps an offset inside this scalar's value to its file position, for every scalar style. */
  valuePos(offset: number): SourcePos {
    const n = this.node;
    if (!isScalar(n) || !n.range) return this.pos;
    return this.src.pos(scalarSourceOffset(this.src.text, n, offset));
  }
}
