import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');

describe('src/ratelimit/ioredis.ts', () => {
  it('leaves String.prototype in fast mode, where importing ioredis itself does not', () => {
    // A child process: V8's property-mode check needs --allow-natives-syntax, which vitest's workers lack.
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--import', 'tsx', path.join(ROOT, 'test', 'support', 'string-prototype-probe.mjs')],
      // A clean environment: what vitest sets for its own processes (NODE_OPTIONS and the like) stays out.
      { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } },
    );
    const [afterIoredis, afterOurModule, afterServerModules, afterLaterSubclass] = JSON.parse(
      out.trim().split('\n').pop()!,
    ) as unknown[];
    // ioredis' `class VerbatimString extends String` leaves it in dictionary mode: the reason the module exists.
    // Should ioredis stop doing that, this line says the workaround has become moot.
    expect(afterIoredis).toBe(false);
    expect(afterOurModule).toBe(true);
    expect(afterServerModules).toBe(true);
    // Once V8 has made it fast as a prototype, a later subclass no longer sends it back.
    expect(afterLaterSubclass).toBe(true);
  }, 30_000);

  it('is the only module of src/ that imports ioredis', () => {
    const importers = (fs.readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts'))
      .filter((f) => /from\s+['"]ioredis['"]/.test(fs.readFileSync(path.join(ROOT, 'src', f), 'utf8')));
    expect(importers).toEqual([path.join('ratelimit', 'ioredis.ts')]);
  });
});
