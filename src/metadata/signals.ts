// Waiting on backends within a Check's deadline. A shared (coalesced) load runs on its own timeout, so one
// caller giving up does not fail the others; each caller stops waiting at its own deadline.

export class DeadlineExceeded extends Error {
  constructor() {
    super('no answer within the deadline');
    this.name = 'DeadlineExceeded';
  }
}

/** One instance for every give-up: it never leaves the process, and a stack trace per Check costs CPU in a burst. */
const DEADLINE_EXCEEDED = new DeadlineExceeded();

/** Resolves like `work`, or rejects with DeadlineExceeded when `signal` aborts first. */
export function untilAborted<T>(work: T | Promise<T>, signal: AbortSignal): Promise<T> {
  if (!(work instanceof Promise)) return Promise.resolve(work);
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(DEADLINE_EXCEEDED);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(DEADLINE_EXCEEDED);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Aborts at the Check's deadline or after `timeoutMs`, whichever comes first. */
export function checkSignal(deadlineSignal: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([deadlineSignal, AbortSignal.timeout(timeoutMs)]);
}
