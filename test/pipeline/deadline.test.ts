import { describe, expect, it } from 'vitest';
import { waitWithinDeadline } from '../../src/pipeline/deadline.js';

const ctx = (budgetMs: number, signal = new AbortController().signal) => ({ deadline: Date.now() + budgetMs, signal });

describe('waitWithinDeadline', () => {
  it('passes plain values and settled work through', async () => {
    expect(await waitWithinDeadline(7, ctx(100))).toEqual({ done: true, value: 7 });
    expect(await waitWithinDeadline(Promise.resolve('x'), ctx(100))).toEqual({ done: true, value: 'x' });
  });

  it('gives up at the deadline on work that never finishes', async () => {
    expect(await waitWithinDeadline(new Promise(() => undefined), ctx(20))).toEqual({ done: false });
  });

  it('gives up at once when no budget is left or the Check was aborted', async () => {
    expect(await waitWithinDeadline(new Promise(() => undefined), ctx(0))).toEqual({ done: false });
    const aborted = new AbortController();
    const waiting = waitWithinDeadline(new Promise(() => undefined), ctx(60_000, aborted.signal));
    aborted.abort();
    expect(await waiting).toEqual({ done: false });
  });
});
