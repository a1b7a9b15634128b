// Type-check messages that name the expression, its type and what was expected (cel-js says less).
import { describe, expect, it } from 'vitest';
import { compileExpression, type ExpectedType } from '../../src/cel/compile.js';

function message(text: string, expected: ExpectedType = 'bool'): string {
  const pos = { file: 'x.yaml', line: 1, col: 1 };
  const r = compileExpression({ text, pos, posAt: () => pos }, expected, 'rule');
  return r.error?.message ?? '(no error)';
}

describe('CEL type error messages', () => {
  it('a missing field names the object, its type and close names', () => {
    expect(message('source.princpal == "x"')).toContain('field "princpal" does not exist on source (egress.Peer); did you mean "principal"?');
    expect(message('request.headerz["a"] == "b"')).toContain('did you mean "headers"?');
  });

  it('lists the fields when nothing is close', () => {
    expect(message('auth.zzzzzzzz == 1')).toBe(
      'rule: type error: field "zzzzzzzz" does not exist on auth (egress.Auth); its fields are identity, metadata, authorization',
    );
  });

  it('an operator on mismatched types names both sides and their types', () => {
    expect(message('request.method + 1 == "x"')).toBe(
      'rule: type error: cannot apply + to string and int: request.method is string, 1 is int (convert one side, e.g. string(x) or int(x))',
    );
  });

  it('wrong argument types list the signatures that exist', () => {
    expect(message('request.path.startsWith(1)')).toBe(
      'rule: type error: request.path (string).startsWith(int): wrong argument types; expected string.startsWith(string): bool',
    );
  });

  it('an unknown function suggests a close one', () => {
    expect(message('sise(request.path) > 1')).toContain('unknown function sise() (did you mean "size"?)');
  });

  it('a non-bool operand of && says which one', () => {
    expect(message('request.method && true')).toBe('rule: type error: each side of && must be bool, but request.method is string');
  });

  it('selecting a field of a string says what the string is', () => {
    expect(message('request.method.name == "x"')).toBe('rule: type error: request.method is string: it has no fields or keys to select');
  });

  it('valid expressions still compile', () => {
    expect(message('request.method == "GET" && request.headers[?"x"].orValue("") == ""')).toBe('(no error)');
  });
});
