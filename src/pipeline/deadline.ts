// Waiting for a backend (identity, metadata) inside one Check's budget. A shared (coalesced) backend call keeps running on
// its own timeout when one caller gives up, so its answer still fills the cache for the next request; each
// caller stops waiting a little before its deadline so that it can still answer 503 with a precise reason
// (the authorizer's own deadline 503 says only that time ran out), and leaves the load with the Check
// (gaveUpOn) so that the authorizer can finish the work in the background.
import type { CheckContext } from './context.js';

/** Time kept back from the Check deadline to build and send our own answer. */
const ANSWER_MARGIN_MS = 5;

/** What a wait needs of a Check: its deadline, its signal, and where to leave a load it gave up on. */
export type WaitingCheck = Pick<CheckContext, 'deadline' | 'signal'> & Partial<Pick<CheckContext, 'gaveUpOn'>>;

export type Waited<T> = { readonly done: true; readonly value: T } | { readonly done: false };

/**
 * The value of `work`, or `{done: false}` when the Check's deadline comes first. Never rejects on timeout.
 * A value that is already there (a cache hit) is returned as is, without a promise.
 */
export function waitWithinDeadline<T>(work: T | Promise<T>, ctx: WaitingCheck): Waited<T> | Promise<Waited<T>> {
  if (!(work instanceof Promise)) return { done: true, value: work };
  return waitForLoad(work, ctx);
}

/** The same for a load known to be pending: always a promise. A load that fails rejects it. */
export async function waitForLoad<T>(work: Promise<T>, ctx: WaitingCheck): Promise<Waited<T>> {
  const budget = ctx.deadline - ANSWER_MARGIN_MS - Date.now();
  if (budget <= 0 || ctx.signal.aborted) {
    work.catch(() => undefined);
    ctx.gaveUpOn?.(work);
    return { done: false };
  }
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const gaveUp = new Promise<Waited<T>>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), budget);
    onAbort = () => resolve({ done: false });
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const waited = await Promise.race([work.then((value): Waited<T> => ({ done: true, value })), gaveUp]);
    if (!waited.done) ctx.gaveUpOn?.(work);
    return waited;
  } finally {
    clearTimeout(timer);
    if (onAbort) ctx.signal.removeEventListener('abort', onAbort);
  }
}
