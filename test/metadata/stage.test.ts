// The metadata stage's ordering and decision rules, with small in-test sources (no backends).
import { describe, expect, it } from 'vitest';
import { harness, run } from './harness.js';
import { metadataStage, priorityGroups } from '../../src/metadata/stage.js';
import type { MetadataSource, SourceOutcome } from '../../src/metadata/source.js';

function source(name: string, priority: number, outcome: SourceOutcome, seen: string[] = []): MetadataSource {
  return {
    name,
    kind: 'test',
    priority,
    when: [],
    fetch: async () => {
      seen.push(name);
      return outcome;
    },
  };
}

describe('metadata stage', () => {
  it('groups by priority, lowest first, keeping declaration order', () => {
    const groups = priorityGroups([source('c', 2, { kind: 'ok', value: 1 }), source('a', 0, { kind: 'ok', value: 1 }), source('b', 2, { kind: 'ok', value: 1 })]);
    expect(groups.map((g) => g.map((s) => s.name))).toEqual([['a'], ['c', 'b']]);
  });

  it('stores ok results, leaves absent ones unset, and logs why at debug level', async () => {
    const h = harness();
    const stage = metadataStage('p', [source('a', 0, { kind: 'ok', value: { x: 1n } }), source('b', 0, { kind: 'absent', reason: 'HTTP 404' })], h.services.logger);
    const { decision, ctx } = await run(stage);
    expect(decision).toBeUndefined();
    expect(ctx.auth.metadata).toEqual({ a: { x: 1n } });
    expect(h.logs.some((l) => l.includes('HTTP 404') && l.includes('"source":"b"'))).toBe(true);
  });

  it('denies with 503 over 403 within a group, and runs no later priority', async () => {
    const seen: string[] = [];
    const stage = metadataStage(
      'p',
      [
        source('refused', 0, { kind: 'deny', status: 403, reason: 'refused' }, seen),
        source('down', 0, { kind: 'deny', status: 503, reason: 'down' }, seen),
        source('later', 1, { kind: 'ok', value: 1 }, seen),
      ],
      harness().services.logger,
    );
    const { decision } = await run(stage);
    expect(decision).toMatchObject({ kind: 'deny', status: 503, reason: 'down', evaluator: 'metadata' });
    expect(seen).toEqual(['refused', 'down']);
  });
});
