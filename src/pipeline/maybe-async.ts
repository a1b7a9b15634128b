// Values that are ready now on the warm path (every cache hit) and only later on a miss. A Check whose
// answers are all cached is decided synchronously and answered in the gRPC handler's own tick: no promise,
// no microtask hop, no deadline timer. Stages return a plain value when they can and a promise when they
// must wait for a backend; callers branch with `andThen` instead of `await`.

export type MaybePromise<T> = T | Promise<T>;

/** `f(v)` now when `v` is ready, else once it resolves (a rejection propagates, `f` is not called). */
export function andThen<T, U>(v: MaybePromise<T>, f: (value: T) => MaybePromise<U>): MaybePromise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}
