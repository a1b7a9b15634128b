import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('keepStringPrototypeFast', () => {
  it('puts String.prototype back into fast mode after a dependency subclassed String', () => {
    // A child process: V8's property-mode check needs --allow-natives-syntax, which vitest's workers lack.
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', path.join(ROOT, 'test', 'support', 'string-prototype-probe.mjs')],
      // A clean environment: what vitest sets for its own processes (NODE_OPTIONS and the like) stays out.
      { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
    );
    const [afterImports, afterCall, afterLaterSubclass] = JSON.parse(out.trim().split('\n').pop()!) as unknown[];
    // The server's imports (ioredis' `class VerbatimString extends String`) leave it in dictionary mode: the
    // reason the call exists. Should a dependency stop doing that, this line says the call has become moot.
    expect(afterImports).toBe(false);
    expect(afterCall).toBe(true);
    // Once V8 has made it fast as a prototype, a later subclass no longer sends it back.
    expect(afterLaterSubclass).toBe(true);
  }, 30_000);
});
