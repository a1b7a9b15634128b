// Every YAML scalar style maps a position inside its value back to the character in the file.
import { describe, expect, it } from 'vitest';
import { isScalar, parseDocument, type Scalar } from 'yaml';
import { Diagnostics } from '../../src/policy/diagnostics.js';
import { quotedValueForTest } from '../../src/policy/scalar-offsets.js';
import { SourceFile, YNode } from '../../src/policy/yaml-node.js';

const FILE = [
  'plain: request.method == tokPlain',
  'plainMulti: request.method == "GET" &&',
  '  request.path == tokPlainMulti',
  'double: "\\"a\\\\b\\" + \\u0041 + tokDouble"',
  'doubleMulti: "request.method ==',
  '    tokDoubleMulti"',
  "single: '''a'' + tokSingle'",
  'literal: |',
  '  request.method == "GET" &&',
  '    request.path == tokLiteral',
  'folded: >',
  '  request.host == "a" &&',
  '',
  '    request.headerz["x"] == tokFolded1 &&',
  '  request.size > 0 && tokFolded2',
  'strip: >-',
  '    first line',
  '    second tokStrip',
  'indicator: |2',
  '      deeper first',
  '    tokIndicator',
  '',
].join('\n');

function setup() {
  const src = new SourceFile('t.yaml', FILE);
  const doc = parseDocument(FILE, { lineCounter: src.lineCounter });
  const root = YNode.of(src, doc, new Diagnostics());
  return { src, root };
}

/** Line and column (1-based) of `token` in the file text. */
function whereInFile(token: string): { line: number; col: number } {
  const at = FILE.indexOf(token);
  const before = FILE.slice(0, at);
  const line = before.split('\n').length;
  return { line, col: at - before.lastIndexOf('\n') };
}

const CASES: Array<[key: string, token: string]> = [
  ['plain', 'tokPlain'],
  ['plainMulti', 'tokPlainMulti'],
  ['double', 'tokDouble'],
  ['doubleMulti', 'tokDoubleMulti'],
  ['single', 'tokSingle'],
  ['literal', 'tokLiteral'],
  ['folded', 'tokFolded1'],
  ['folded', 'tokFolded2'],
  ['strip', 'tokStrip'],
  ['indicator', 'tokIndicator'],
];

describe('YNode.valuePos', () => {
  it.each(CASES)('%s: %s lands on the token in the file', (key, token) => {
    const { root } = setup();
    const node = root.get(key)!;
    const value = node.string()!;
    const offset = value.indexOf(token);
    expect(offset).toBeGreaterThanOrEqual(0);
    const pos = node.valuePos(offset);
    expect({ line: pos.line, col: pos.col }).toEqual(whereInFile(token));
  });

  it('maps the first character of every style to where the value starts', () => {
    const { root } = setup();
    expect(root.get('plain')!.valuePos(0)).toMatchObject({ line: 1, col: 8 });
    expect(root.get('double')!.valuePos(0)).toMatchObject({ line: 4, col: 10 }); // the \" escape
    expect(root.get('literal')!.valuePos(0)).toMatchObject({ line: 9, col: 3 });
  });

  it('reads quoted scalars exactly as the YAML parser does (escapes and folding)', () => {
    const { root, src } = setup();
    for (const key of ['double', 'doubleMulti', 'single']) {
      const node = root.get(key)!.node;
      expect(isScalar(node)).toBe(true);
      expect(quotedValueForTest(src.text, node as Scalar)).toBe(String((node as Scalar).value));
    }
  });
});
