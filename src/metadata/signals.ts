// The abort signal of an uncached metadata call. Waiting on cached (coalesced) loads is
// src/pipeline/deadline.ts: a shared load runs on its own timeout, and each caller stops waiting by itself.

/** Aborts at the Check's deadline or after `timeoutMs`, whichever comes first. */
export function checkSignal(deadlineSignal: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([deadlineSignal, AbortSignal.timeout(timeoutMs)]);
}
